"""The container image's build: build/Dockerfile is a conventional multi-stage build (official
Swift image, slim runtime, non-root user, `pico` entrypoint, ports 8000-8003), and its build
step, build/build-release, run here outside Docker with the same flags, produces a `pico` whose
only shared libraries are the C and C++ runtime the runtime image installs (the Swift standard
library, Foundation and Dispatch are linked in), and which runs and validates the shipped config.

Run: python3 system-tests/deploy/test_build_release.py [scratch directory, default .build/static]
"""
import os
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRATCH = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(ROOT, ".build", "static"))
# What build/Dockerfile's runtime stage provides (glibc from the base image, libstdc++6,
# libgcc-s1 and libssl3t64 installed), plus the kernel's vDSO and the loader.
RUNTIME_LIBRARIES = {"linux-vdso.so.1", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                     "libstdc++.so.6", "libgcc_s.so.1", "libssl.so.3", "libcrypto.so.3", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "libutil.so.1"}


def dockerfile_stages():
    """[(base image, alias, [(instruction, argument)])] of build/Dockerfile."""
    with open(os.path.join(ROOT, "build", "Dockerfile")) as handle:
        text = re.sub(r"\\\n", " ", handle.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, argument = line.partition(" ")
        if instruction.upper() == "FROM":
            words = argument.split()
            stages.append((words[0], words[2] if len(words) > 2 else None, []))
        elif stages:
            stages[-1][2].append((instruction.upper(), argument.strip()))
    return stages


class BuildReleaseTests(unittest.TestCase):
    binary = None

    @classmethod
    def setUpClass(cls):
        result = subprocess.run([os.path.join(ROOT, "build", "build-release"), SCRATCH], capture_output=True, text=True)
        if result.returncode != 0:
            raise AssertionError(f"build/build-release failed:\n{result.stderr[-3000:]}")
        cls.binary = result.stdout.strip().splitlines()[-1]

    def test_dockerfile_isAMultiStageBuild_ofPico_runAsNonRoot(self):
        stages = dockerfile_stages()
        self.assertEqual(len(stages), 2)
        (build_image, build_alias, build_steps), (runtime_image, _, runtime_steps) = stages
        self.assertTrue(build_image.startswith("swift:"), build_image)
        self.assertTrue(runtime_image.startswith("ubuntu:"), "a slim runtime without the toolchain")
        runs = [argument for instruction, argument in build_steps if instruction == "RUN"]
        self.assertTrue(any("build/build-release" in run for run in runs), "the image builds with the tested script")
        copies = [argument for instruction, argument in runtime_steps if instruction == "COPY"]
        self.assertTrue(any(copy.startswith(f"--from={build_alias} ") and copy.endswith("/usr/local/bin/pico") for copy in copies), copies)
        user = [argument for instruction, argument in runtime_steps if instruction == "USER"]
        self.assertEqual(len(user), 1)
        self.assertNotIn(user[0].split(":")[0], ("root", "0"))
        self.assertTrue(user[0].split(":")[0].isdigit(), "numeric, so runAsNonRoot can check it")
        self.assertIn(("ENTRYPOINT", '["/usr/local/bin/pico"]'), runtime_steps)
        exposed = " ".join(argument for instruction, argument in runtime_steps if instruction == "EXPOSE").split()
        self.assertEqual(sorted(exposed), ["8000/tcp", "8001/tcp", "8002/tcp", "8003/tcp", "8003/udp"])
        installed = " ".join(argument for instruction, argument in runtime_steps if instruction == "RUN")
        for package in ("libstdc++6", "libgcc-s1", "libssl3t64"):
            self.assertIn(package, installed)
        build_runs = " ".join(runs)
        self.assertIn("libssl-dev", build_runs, "the build stage has OpenSSL's headers for the COpenSSL target")

    def test_buildScript_usesReleaseAndTheStaticStandardLibrary(self):
        with open(os.path.join(ROOT, "build", "build-release")) as handle:
            script = handle.read()
        self.assertIn("swift build -c release --static-swift-stdlib --product pico", script)

    def test_binary_needsOnlyTheRuntimeImagesLibraries(self):
        listing = subprocess.run(["ldd", self.binary], capture_output=True, text=True, check=True).stdout
        libraries = {line.split()[0].split("/")[-1] for line in listing.splitlines() if line.strip()}
        self.assertFalse({library for library in libraries if "swift" in library or "Foundation" in library or "dispatch" in library},
                         listing)
        self.assertTrue(libraries <= RUNTIME_LIBRARIES, libraries - RUNTIME_LIBRARIES)

    def test_binary_runsWithoutTheToolchain_andValidatesTheShippedConfig(self):
        clean = {"PATH": "/usr/bin:/bin", "POD_NAME": "pico-0", "POD_IP": "10.0.0.7"}
        with tempfile.TemporaryDirectory() as directory:
            version = subprocess.run([self.binary, "--version"], capture_output=True, text=True, env=clean, cwd=directory)
            self.assertEqual(version.returncode, 0, version.stderr)
            self.assertRegex(version.stdout, r"^pico \S+")
            with open(os.path.join(ROOT, "operations", "kubernetes", "configmap.yaml")) as handle:
                server_yaml = yaml.safe_load(handle)["data"]["server.yaml"]
            path = os.path.join(directory, "server.yaml")
            with open(path, "w") as handle:
                handle.write(server_yaml)
            result = subprocess.run([self.binary, "server", "--config.path", path, "--config.expand-env", "--validate"],
                                    capture_output=True, text=True, env=clean, cwd=directory)
            self.assertEqual((result.returncode, result.stdout), (0, "config ok\n"), result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
