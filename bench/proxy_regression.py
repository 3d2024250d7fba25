"""Did a change slow Pico's data path? Measures pico / nginx-chain requests per second for two
pico binaries (a base commit's and the change's), in interleaved rounds (base, change, base,
change, ...) so a drift of the shared machine hits both alike, and prints each round, the median
ratio of each, and the change's median over the base's. Each round is one run of
bench/proxy_bench.py with the pico and nginx-chain configurations.

Run through bench/proxy-regression; python3 bench/proxy_regression.py <base pico> <change pico>
[--rounds 3] [--duration 10] [--size 1024] [--connections 64] [--floor 0.97]
Exits 1 when the change's median ratio is below floor × the base's.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(pico, args):
    """pico / nginx-chain requests per second in one run of the proxy bench."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        path = handle.name
    try:
        subprocess.run([sys.executable, os.path.join(HERE, "proxy_bench.py"), pico, "--configs", "nginx-chain,pico",
                        "--sizes", str(args.size), "--connections", str(args.connections), "--duration", str(args.duration),
                        "--json", path], check=True, stdout=subprocess.DEVNULL)
        with open(path) as f:
            results = json.load(f)["results"]
    finally:
        os.unlink(path)
    cell = f"{args.size}/{args.connections}"
    return results["pico"][cell]["rps"] / results["nginx-chain"][cell]["rps"], results["pico"][cell]["rps"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("change")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--floor", type=float, default=0.97)
    args = parser.parse_args()
    ratios = {"base": [], "change": []}
    print(f"pico / nginx-chain at {args.size} B, {args.connections} connections, {args.duration} s per cell, {args.rounds} interleaved rounds")
    print("| round | binary | pico req/s | pico / nginx-chain |")
    print("|---:|---|---:|---:|")
    for number in range(1, args.rounds + 1):
        for name in ("base", "change"):
            ratio, rps = measure(getattr(args, name), args)
            ratios[name].append(ratio)
            print(f"| {number} | {name} | {rps:,.0f} | {ratio:.3f} |", flush=True)
    base, change = statistics.median(ratios["base"]), statistics.median(ratios["change"])
    print(f"\nmedian pico / nginx-chain: base {base:.3f}, change {change:.3f}; change / base = {change / base:.3f} (floor {args.floor})")
    if change / base < args.floor:
        print("proxy regression: the change is slower than the floor allows", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
