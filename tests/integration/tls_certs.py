"""Throwaway certificates for the TLS tests, made with the `openssl` command: a CA, a server
certificate it signed for localhost and 127.0.0.1, and a second CA that signed nothing the
broker serves (a client that trusts only it must refuse the broker)."""
import os
import subprocess


def _run(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(d, name):
    """DIR/NAME.key and DIR/NAME.pem, a self-signed CA (EC P-256: quick handshakes)."""
    key, pem = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", pem, "-days", "2", "-subj", "/CN=moonpost test CA " + name)
    return key, pem


def make_server_cert(d, name, ca_key, ca_pem, cn="localhost", ip="127.0.0.1"):
    """DIR/NAME.key and DIR/NAME.pem, signed by the CA, for CN and the address IP."""
    key, pem, csr = (os.path.join(d, name + ext) for ext in (".key", ".pem", ".csr"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s%s\n" % (cn, ",IP:" + ip if ip else ""))
    _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
         "-out", csr, "-subj", "/CN=" + cn)
    _run("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
         "-out", pem, "-days", "2", "-extfile", ext)
    return key, pem


class Certs:
    """Every file a TLS test needs, in D."""

    def __init__(self, d):
        self.dir = d
        self.ca_key, self.ca = make_ca(d, "ca")
        self.key, self.cert = make_server_cert(d, "server", self.ca_key, self.ca)
        _, self.other_ca = make_ca(d, "other-ca")
