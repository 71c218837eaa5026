import gzip
from pathlib import Path

from connector.adapters.archive import read_records

MSG = b"MSH|^~\\&|A|F|B|R|20260302101500||RAS^O17|%d|P|2.5\rPID|1\rRXA|0|1|20260302101500\r"


def test_directories_are_read_recursively_in_name_order_and_gz_is_transparent(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a.hl7").write_bytes(MSG % 1)
    (tmp_path / "b" / "c.hl7.gz").write_bytes(gzip.compress(MSG % 2 + MSG % 3))
    (tmp_path / "b" / "d.ndjson").write_bytes(
        b'{"resourceType":"Encounter","id":"1"}\n{"resourceType":"Encounter","id":"2"}\n'
    )
    found = list(read_records([str(tmp_path)]))
    assert [(Path(r.source).name, r.format) for r in found] == [
        ("a.hl7", "hl7"),
        ("c.hl7.gz", "hl7"),
        ("c.hl7.gz", "hl7"),
        ("d.ndjson", "fhir"),
        ("d.ndjson", "fhir"),
    ]
    assert found[2].where.endswith(f"c.hl7.gz@byte {len(MSG % 2)}")
