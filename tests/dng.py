"""A tiny DNG written by hand (TIFF structure, a 2x2 Bayer mosaic, optionally a JPEG preview in
IFD0 as cameras write it): rawpy cannot write RAW files, and tests need one to read."""

from __future__ import annotations

import struct

import numpy as np

_SHORT, _LONG, _ASCII, _BYTE, _RATIONAL, _SRATIONAL = 3, 4, 2, 1, 5, 10


def _ifd(entries: list[tuple[int, int, list]], at: int, next_ifd: int) -> tuple[bytes, bytes]:
    """(directory bytes, out-of-line data) for a directory written at offset `at`."""
    entries = sorted(entries)
    size = 2 + 12 * len(entries) + 4
    data = b""
    body = struct.pack("<H", len(entries))
    for tag, kind, values in entries:
        if kind == _ASCII:
            payload = values[0].encode() + b"\0"
            count = len(payload)
        elif kind in (_RATIONAL, _SRATIONAL):
            fmt = "<ii" if kind == _SRATIONAL else "<II"
            payload = b"".join(struct.pack(fmt, n, d) for n, d in values)
            count = len(values)
        else:
            fmt = {_SHORT: "H", _LONG: "I", _BYTE: "B"}[kind]
            payload = struct.pack("<" + fmt * len(values), *values)
            count = len(values)
        if len(payload) <= 4:
            body += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0")
        else:
            offset = at + size + len(data)
            body += struct.pack("<HHI", tag, kind, count) + struct.pack("<I", offset)
            data += payload + (b"\0" if len(payload) % 2 else b"")
    body += struct.pack("<I", next_ifd)
    return body, data


def tiny_dng(width: int = 64, height: int = 48, preview_jpeg: bytes | None = None) -> bytes:
    rng = np.random.default_rng(0)
    mosaic = (rng.uniform(500, 3500, (height, width))).astype("<u2").tobytes()
    header = b"II*\0" + struct.pack("<I", 8)
    raw_entries = [
        (254, _LONG, [0]),
        (256, _LONG, [width]),
        (257, _LONG, [height]),
        (258, _SHORT, [16]),
        (259, _SHORT, [1]),
        (262, _SHORT, [32803]),
        (277, _SHORT, [1]),
        (278, _LONG, [height]),
        (284, _SHORT, [1]),
        (33421, _SHORT, [2, 2]),
        (33422, _BYTE, [0, 1, 1, 2]),
        (50714, _LONG, [0]),  # BlackLevel
        (50717, _LONG, [4095]),  # WhiteLevel
    ]
    common = [
        (271, _ASCII, ["Test"]),
        (272, _ASCII, ["Tiny DNG"]),
        (50706, _BYTE, [1, 4, 0, 0]),
        (50708, _ASCII, ["Test Tiny DNG"]),
        (
            50721,
            _SRATIONAL,
            [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)],
        ),
        (50728, _RATIONAL, [(1, 1), (1, 1), (1, 1)]),  # AsShotNeutral
        (274, _SHORT, [1]),
    ]
    if preview_jpeg is None:
        # One directory: the raw image itself.
        entries = raw_entries + common + [(273, _LONG, [0]), (279, _LONG, [len(mosaic)])]
        probe, extra = _ifd(entries, 8, 0)
        strip = 8 + len(probe) + len(extra)
        entries = raw_entries + common + [(273, _LONG, [strip]), (279, _LONG, [len(mosaic)])]
        ifd, extra = _ifd(entries, 8, 0)
        return header + ifd + extra + mosaic

    # IFD0: the preview (NewSubFileType 1, JPEG); its SubIFD: the raw image.
    def layout(raw_at: int, preview_at: int, strip_at: int) -> tuple[bytes, bytes, bytes, bytes]:
        ifd0_entries = [
            *common,
            (254, _LONG, [1]),
            (256, _LONG, [width]),
            (257, _LONG, [height]),
            (258, _SHORT, [8, 8, 8]),
            (259, _SHORT, [7]),
            (262, _SHORT, [6]),
            (277, _SHORT, [3]),
            (273, _LONG, [preview_at]),
            (279, _LONG, [len(preview_jpeg)]),
            (330, _LONG, [raw_at]),
        ]
        ifd0, extra0 = _ifd(ifd0_entries, 8, 0)
        sub_entries = [*raw_entries, (273, _LONG, [strip_at]), (279, _LONG, [len(mosaic)])]
        sub, extra_sub = _ifd(sub_entries, raw_at, 0)
        return ifd0, extra0, sub, extra_sub

    ifd0, extra0, sub, extra_sub = layout(0, 0, 0)
    raw_at = 8 + len(ifd0) + len(extra0)
    preview_at = raw_at + len(sub) + len(extra_sub)
    strip_at = preview_at + len(preview_jpeg) + (len(preview_jpeg) % 2)
    ifd0, extra0, sub, extra_sub = layout(raw_at, preview_at, strip_at)
    pad = b"\0" * (len(preview_jpeg) % 2)
    return header + ifd0 + extra0 + sub + extra_sub + preview_jpeg + pad + mosaic
