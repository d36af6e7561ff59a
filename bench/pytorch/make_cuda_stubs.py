#!/usr/bin/env python3
"""Build tiny stand-in libraries for the CUDA libraries a PyPI torch wheel links.

Why: the Linux torch wheel on PyPI is the CUDA build. Even libtorch_cpu.so has
DT_NEEDED entries for libcudart/libcupti, and libtorch_cuda.so (loaded by
`import torch`) needs cuBLAS, cuDNN, NCCL, ... which normally come from ~3 GB
of nvidia-* wheels. On a machine without a GPU none of them is ever called
on the CPU code paths, but the dynamic loader still has to find them.

This script reads the torch shared objects (readelf/nm from binutils), and
for every NEEDED soname that is neither shipped in torch/lib nor found by
ldconfig, compiles (gcc) a stub .so with that soname, the symbol versions
torch asks for, and every symbol torch imports from it. Each stub function
returns 100 (cudaErrorNoDevice for the CUDA runtime; a non-zero "failure"
status for the other libraries), so torch.cuda.is_available() is False and
torch stays on its CPU kernels, which live in libtorch_cpu.so and are
byte-for-byte the same code either way.

Used only by bench/pytorch/setup.sh for the throwaway benchmark venv.
Usage: make_cuda_stubs.py TORCH_PACKAGE_DIR   (prints the stubs it wrote)
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

# The GPU driver itself: only libcaffe2_nvrtc.so needs it and torch loads that
# lazily for CUDA JIT. A missing driver is the normal CPU-only situation.
SKIP = {"libcuda.so.1"}
# Unversioned imports go to the library whose prefix they carry (the CUDA
# runtime/math libraries version their symbols; these three do not).
UNVERSIONED_PREFIX = {
    "libcufile.so.0": ("cuFile",),
    "libcusparseLt.so.0": ("cusparseLt",),
    "libnccl.so.2": ("nccl",),
}
STRING_RETURNING = re.compile(r"(ErrorString|ErrorName|StatusString|GetString|GetErrorMessage)$")


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def system_sonames():
    names = set()
    for line in run("ldconfig", "-p").splitlines()[1:]:
        line = line.strip()
        if line:
            names.add(line.split()[0])
    return names


def main(torch_dir):
    lib_dir = os.path.join(torch_dir, "lib")
    objs = sorted(glob.glob(os.path.join(lib_dir, "*.so*")) + glob.glob(os.path.join(torch_dir, "_C*.so")))
    shipped = {os.path.basename(p) for p in objs}
    known = shipped | system_sonames()

    needed = set()
    ver_to_file = {}  # version name -> soname that defines it
    imports = []  # (symbol, version or None)
    for obj in objs:
        dyn = run("readelf", "-dW", obj)
        needed.update(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn))
        cur = None
        for line in run("readelf", "-VW", obj).splitlines():
            m = re.search(r"File: (\S+)", line)
            if m:
                cur = m.group(1)
                continue
            m = re.search(r"Name: (\S+)", line)
            if m and cur:
                ver_to_file[m.group(1)] = cur
        for line in run("nm", "-D", "--undefined-only", obj).splitlines():
            parts = line.split()
            if len(parts) != 2 or parts[0] != "U":  # weak refs may stay unresolved
                continue
            sym, _, ver = parts[1].partition("@")
            imports.append((sym, ver.lstrip("@") or None))

    missing = sorted(n for n in needed if n not in known and n not in SKIP)
    written = []
    for soname in missing:
        versions = sorted(v for v, f in ver_to_file.items() if f == soname)
        by_version = {v: set() for v in versions}
        unversioned = set()
        prefixes = UNVERSIONED_PREFIX.get(soname, ())
        for sym, ver in imports:
            if ver is not None and ver in by_version:
                by_version[ver].add(sym)
            elif ver is None and prefixes and sym.startswith(prefixes):
                unversioned.add(sym)
        all_syms = set(unversioned).union(*by_version.values()) if by_version else set(unversioned)
        if not all_syms and not versions:
            print(f"warning: no symbols known for {soname}; empty stub", file=sys.stderr)

        src = ['static const char stub_msg[] = "CUDA library stub (bench venv without GPU)";']
        for sym in sorted(all_syms):
            if STRING_RETURNING.search(sym):
                src.append(f"const char *{sym}(void) {{ return stub_msg; }}")
            else:
                src.append(f"long {sym}(void) {{ return 100; }}")
        with tempfile.TemporaryDirectory() as tmp:
            c_path = os.path.join(tmp, "stub.c")
            with open(c_path, "w") as f:
                f.write("\n".join(src) + "\n")
            cmd = ["gcc", "-shared", "-fPIC", "-O0", "-w", "-o", os.path.join(lib_dir, soname),
                   f"-Wl,-soname,{soname}", c_path]
            if versions:
                # unversioned imports bind to the default (@@) version: put them in the first node
                nodes = []
                for i, v in enumerate(versions):
                    syms = sorted(by_version[v] | (unversioned if i == 0 else set()))
                    body = " ".join(f"{s};" for s in syms)
                    nodes.append(f"{v} {{ global: {body} }};" if syms else f"{v} {{ }};")
                vs_path = os.path.join(tmp, "stub.map")
                with open(vs_path, "w") as f:
                    f.write("\n".join(nodes) + "\n")
                cmd.append(f"-Wl,--version-script={vs_path}")
            subprocess.run(cmd, check=True)
        written.append(soname)
        print(f"{soname}: {len(all_syms)} symbols, versions {versions or '-'}")
    with open(os.path.join(lib_dir, "BENCH_CUDA_STUBS"), "w") as f:
        f.write("\n".join(written) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
