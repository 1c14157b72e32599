"""Checks Lambda bootstraps built by build-lambda.sh: a 64-bit little-endian ELF executable for
AArch64 (what the template's arm64 functions run) that asks for no glibc symbol version newer
than provided.al2023's glibc 2.34. Usage: check_bootstrap.py target/lambda/NAME/bootstrap ..."""

import re
import struct
import sys

EM_AARCH64 = 183
AL2023_GLIBC = (2, 34)


def check(path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        raise SystemExit(f"{path}: not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise SystemExit(f"{path}: not a 64-bit little-endian ELF")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_machine != EM_AARCH64:
        raise SystemExit(f"{path}: built for ELF machine {e_machine}, not AArch64 ({EM_AARCH64})")
    if e_type not in (2, 3):  # EXEC, or DYN (position-independent executable)
        raise SystemExit(f"{path}: ELF type {e_type} is not an executable")
    versions = {tuple(int(x) for x in m.groups()) for m in re.finditer(rb"GLIBC_(\d+)\.(\d+)", data)}
    newest = max(versions, default=(0, 0))
    if newest > AL2023_GLIBC:
        raise SystemExit(
            f"{path}: needs glibc {newest[0]}.{newest[1]}, provided.al2023 has "
            f"{AL2023_GLIBC[0]}.{AL2023_GLIBC[1]}"
        )
    return f"{path}: AArch64 executable, {len(data) / 1e6:.1f} MB, newest glibc symbol {newest[0]}.{newest[1]}"


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for p in sys.argv[1:]:
        print(check(p))
