#!/usr/bin/env python3
"""test_install: `cmake --install` of the client component into a temporary prefix, then the
example is built the way a newcomer would, with `pkg-config --cflags --libs moonpost`, and run
against a live broker; the installed moonpostctl talks to its admin socket.

Run by run_with_broker.py (MOONPOST_PORT, MOONPOST_ADMIN_SOCKET)."""
import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

ARGS = None


def run(cmd, env=None, **kw):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, **kw)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(cmd), p.returncode, p.stdout,
                                                        p.stderr))
    return p.stdout


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="moonpost-install-")
        run(["cmake", "--install", ARGS.build_dir, "--component", "client", "--prefix",
             cls.prefix])
        pcs = glob.glob(os.path.join(cls.prefix, "lib*", "**", "moonpost.pc"), recursive=True)
        assert pcs, "moonpost.pc was not installed"
        cls.env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
        cls.libdir = os.path.dirname(os.path.dirname(pcs[0]))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)

    def test_files_are_installed(self):
        p = self.prefix
        self.assertTrue(os.path.exists(os.path.join(p, "include", "moonpost.h")))
        self.assertFalse(glob.glob(os.path.join(p, "include", "mp_internal.h")))
        self.assertTrue(glob.glob(os.path.join(self.libdir, "libmoonpost.so*")))
        self.assertTrue(os.path.exists(os.path.join(self.libdir, "libmoonpost.a")))
        for tool in ("moonpost-chat", "moonpostctl"):
            self.assertTrue(os.access(os.path.join(p, "bin", tool), os.X_OK), tool)

    def test_pkg_config_points_into_the_prefix(self):
        flags = run(["pkg-config", "--cflags", "--libs", "moonpost"], env=self.env)
        self.assertIn("-lmoonpost", flags)
        self.assertIn(os.path.realpath(self.prefix), os.path.realpath(
            flags.split("-L", 1)[1].split()[0]))
        static = run(["pkg-config", "--static", "--libs", "moonpost"], env=self.env)
        self.assertIn("msgpack", static)

    def test_example_builds_with_pkg_config_and_chats(self):
        flags = run(["pkg-config", "--cflags", "--libs", "moonpost"], env=self.env)
        exe = os.path.join(self.prefix, "hello")
        run([ARGS.cc, ARGS.example, "-o", exe] + shlex.split(ARGS.extra_cflags) +
            shlex.split(flags))
        env = dict(os.environ, LD_LIBRARY_PATH=self.libdir)
        out = run([exe, "127.0.0.1", os.environ["MOONPOST_PORT"], "hello_user", "hellopw1"],
                  env=env)
        self.assertIn("logged in as hello_user", out)
        self.assertIn("from hello_user: hello, moonpost", out)

    def test_installed_moonpostctl(self):
        out = run([os.path.join(self.prefix, "bin", "moonpostctl"), "--socket",
                   os.environ["MOONPOST_ADMIN_SOCKET"], "stats"])
        self.assertIn("uptime", out)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", required=True)
    p.add_argument("--cc", default="cc")
    p.add_argument("--example", required=True)
    p.add_argument("--extra-cflags", default="")
    ARGS, rest = p.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
