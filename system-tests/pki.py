"""A throw-away PKI made with the openssl command line, for the tests and benches that need
certificates: CAs, leaf certificates (ECDSA P-256) with the extensions asked for, and a
certificate that expired in 2020. Every file lands in one directory, named after its role.
"""
import os
import subprocess


class PKI:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *arguments):
        subprocess.run(["openssl", *arguments], cwd=self.dir, check=True, capture_output=True)

    def ca(self, name, subject):
        """A self-signed CA: `name`.crt and `name`.key."""
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                     "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.crt")
        return self.path(f"{name}.crt")

    def request(self, name, subject, extensions):
        with open(self.path(f"{name}.ext"), "w") as handle:
            handle.write(extensions)
        self.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subject,
                     "-keyout", f"{name}.key", "-out", f"{name}.csr")

    def issue(self, name, ca, subject, extensions, days="2"):
        """A certificate signed by the CA `ca`, with `extensions` (openssl's extfile lines);
        returns (certificate path, key path)."""
        self.request(name, subject, extensions)
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
                     "-days", days, "-extfile", f"{name}.ext", "-out", f"{name}.crt")
        return self.path(f"{name}.crt"), self.path(f"{name}.key")

    def issue_expired(self, name, ca, subject, extensions):
        """A certificate from `ca` valid only on 1 January 2020 (`openssl ca` sets past dates)."""
        with open(self.path("ca.cnf"), "w") as handle:
            handle.write("[ ca ]\ndefault_ca = test\n[ test ]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
                         "default_md = sha256\npolicy = any\n[ any ]\ncommonName = supplied\n")
        open(self.path("index.txt"), "w").close()
        with open(self.path("serial"), "w") as handle:
            handle.write("1000\n")
        self.request(name, subject, extensions)
        self.openssl("ca", "-batch", "-config", "ca.cnf", "-cert", f"{ca}.crt", "-keyfile", f"{ca}.key", "-in", f"{name}.csr",
                     "-out", f"{name}.crt", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extfile", f"{name}.ext", "-notext")
        return self.path(f"{name}.crt"), self.path(f"{name}.key")

    def localhost(self):
        """A CA and a server certificate for localhost and 127.0.0.1: (certificate, key, CA)."""
        ca = self.ca("ca", "/CN=Pico test CA")
        certificate, key = self.issue("server", "ca", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
        return certificate, key, ca
