"""What a file says about itself (IPTC/XMP, names) and how words are matched."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from photos import random_photo
from PIL import Image, PngImagePlugin

from gallery_app.core import metadata
from gallery_app.core.imaging import decode
from gallery_app.core.metadata import (
    BOOST_CAP,
    FILE,
    NAME,
    SOURCE_BOOST,
    USER,
    EmbeddedMetadata,
    combined_boost,
    hybrid_score,
    name_words,
    parse_xmp,
    path_words,
    words,
)

XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:subject><rdf:Bag><rdf:li>Strand</rdf:li><rdf:li>Sylt</rdf:li><rdf:li>strand</rdf:li>
   </rdf:Bag></dc:subject>
   <dc:title><rdf:Alt><rdf:li xml:lang="de">Am Meer</rdf:li>
    <rdf:li xml:lang="x-default">By the sea</rdf:li></rdf:Alt></dc:title>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">Lena and the red kite</rdf:li>
   </rdf:Alt></dc:description>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def test_xmp_keywords_title_and_caption():
    found = parse_xmp(XMP.encode())
    assert found == EmbeddedMetadata(("Strand", "Sylt"), "By the sea", "Lena and the red kite")


def test_xmp_hierarchical_subject_gives_its_leaves_when_there_is_no_dc_subject():
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'xmlns:lr="http://ns.adobe.com/lightroom/1.0/"><lr:hierarchicalSubject><rdf:Bag>'
        "<rdf:li>Places|Germany|Berlin</rdf:li></rdf:Bag></lr:hierarchicalSubject>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    assert parse_xmp(packet).keywords == ("Berlin",)


@pytest.mark.parametrize(
    "packet",
    [
        # Entity expansion ("billion laughs"): a DTD is refused before any parsing.
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>',
        # An external entity (would read a local file).
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
        # Oversized.
        "<x>" + "a" * (metadata.XMP_MAX_BYTES + 1) + "</x>",
    ],
)
def test_hostile_xmp_is_no_metadata(packet):
    assert parse_xmp(packet) == EmbeddedMetadata()


def _iptc_app13(records: list[tuple[int, bytes]]) -> bytes:
    """An APP13 Photoshop segment holding IPTC IIM record-2 datasets."""
    iim = b"".join(b"\x1c\x02" + bytes([ds]) + struct.pack(">H", len(v)) + v for ds, v in records)
    block = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim
    if len(iim) % 2:
        block += b"\x00"
    payload = b"Photoshop 3.0\x00" + block
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def _jpeg(path: Path, seed: int = 0, xmp: bytes | None = None, app13: bytes = b"") -> Path:
    img = Image.fromarray(random_photo(seed))
    if xmp is not None:
        img.save(path, "JPEG", xmp=xmp)
    else:
        img.save(path, "JPEG")
    if app13:
        data = path.read_bytes()
        path.write_bytes(data[:2] + app13 + data[2:])
    return path


def test_decode_reads_iptc_keywords_title_and_caption(tmp_path):
    app13 = _iptc_app13(
        [(25, b"Hafen"), (25, "Möwe".encode()), (5, b"Harbour"), (120, b"Boats at dusk")]
    )
    decoded = decode(_jpeg(tmp_path / "iptc.jpg", app13=app13))
    assert decoded.embedded == EmbeddedMetadata(("Hafen", "Möwe"), "Harbour", "Boats at dusk")


def test_iptc_in_latin1_is_read(tmp_path):
    decoded = decode(
        _jpeg(tmp_path / "latin.jpg", app13=_iptc_app13([(25, "Möwe".encode("latin-1"))]))
    )
    assert decoded.embedded is not None and decoded.embedded.keywords == ("Möwe",)


def test_decode_merges_xmp_and_iptc(tmp_path):
    path = _jpeg(tmp_path / "both.jpg", xmp=XMP.encode(), app13=_iptc_app13([(25, b"Kite")]))
    embedded = decode(path).embedded
    assert embedded is not None
    assert embedded.keywords == ("Strand", "Sylt", "Kite")
    assert embedded.title == "By the sea"


def test_png_xmp_is_read(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP)
    path = tmp_path / "a.png"
    Image.fromarray(random_photo(1)).save(path, pnginfo=info)
    embedded = decode(path).embedded
    assert embedded is not None and embedded.keywords == ("Strand", "Sylt")


@pytest.mark.parametrize(
    "xmp",
    [
        b"<x:xmpmeta><unclosed>",
        b'<!DOCTYPE x [<!ENTITY a "a">]><x>&a;</x>',
        b"\xff\xfe\x00garbage",
    ],
)
def test_broken_or_hostile_metadata_never_fails_the_photo(tmp_path, xmp):
    broken_iptc = b"\xff\xed\x00\x10Photoshop 3.0\x00\x38"  # a truncated resource block
    path = _jpeg(tmp_path / "bad.jpg", xmp=xmp, app13=broken_iptc)
    decoded = decode(path)
    assert decoded.embedded == EmbeddedMetadata()
    assert (decoded.width, decoded.height) == (64, 48)


def test_photos_without_metadata_read_as_empty(tmp_path):
    decoded = decode(_jpeg(tmp_path / "plain.jpg"))
    assert decoded.embedded == EmbeddedMetadata()


# --- words ---------------------------------------------------------------------------------


def test_words_fold_case_accents_and_articles():
    assert words("The Café at Ærø — Straße") == ("cafe", "at", "ærø", "strasse")
    assert words("a dog") == words("Dog") == ("dog",)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Germany 2019", ("germany",)),
        ("IMG_1234", ()),
        ("DSC01234", ()),
        ("PXL_20230704_123456789", ()),
        ("beachDayWithLily", ("beach", "day", "with", "lily")),
        ("HTMLExport-final", ("html",)),
        ("trip2019-Berlin_Mitte", ("trip", "berlin", "mitte")),
        ("Köln", ("koln",)),
    ],
)
def test_name_words(name, expected):
    assert name_words(name) == expected


def test_path_words_are_relative_to_the_library_folder():
    assert path_words("/photos/Germany 2019/IMG_1.jpg", "/photos") == (("germany",),)
    assert path_words("/home/anna/photos/Germany 2019/beach_day.jpg", "/home/anna/photos") == (
        ("germany",),
        ("beach", "day"),
    )
    # The folder's own name (and everything above it) is no photo's word.
    assert path_words("/photos/Vacation/img_1.jpg", "/photos/Vacation") == ()


def test_combined_boost_and_the_hybrid_formula():
    assert combined_boost([USER]) == SOURCE_BOOST[USER]
    assert combined_boost([NAME, NAME]) == SOURCE_BOOST[NAME]
    both = 1 - (1 - SOURCE_BOOST[FILE]) * (1 - SOURCE_BOOST[NAME])
    assert combined_boost([FILE, NAME]) == pytest.approx(both)
    assert combined_boost([USER, FILE, NAME]) == BOOST_CAP
    assert combined_boost([]) == 0.0
    visual = np.array([0.0, 0.3, 1.0])
    np.testing.assert_allclose(hybrid_score(visual, 0.5), [0.5, 0.65, 1.0])
    np.testing.assert_allclose(hybrid_score(visual, 0.0), visual)
