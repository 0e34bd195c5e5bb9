"""Local sources: notes folders (Markdown, text, PDF) and local competitor repos (folders and bundles)."""

import subprocess
from pathlib import Path

from research_agent.research.local_source import LocalCompetitors, LocalNotes

from .conftest import DEMO, git, make_repo


def minimal_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A small valid one-page PDF showing `lines` in Helvetica, with an optional /Title."""
    stream = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title:
        objects.append(f"<< /Title ({title}) >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    info = f" /Info {len(objects)} 0 R" if title else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_notes_folder_markdown_text_and_pdf(tmp_path):
    root = tmp_path / "task"
    notes = root / "notes"
    (notes / "deep").mkdir(parents=True)
    (notes / "tiling.md").write_text("Some preamble\n\n## Cache tiling for GEMM\n\nBlock the loops.\n")
    (notes / "deep" / "plain.markdown").write_text("\n\nNo heading here\nsecond line\n")
    (notes / "log.txt").write_text("\n  Profiling log of the kernel  \nmore\n")
    (notes / "ignored.c").write_text("int main;\n")
    (notes / ".hidden.md").write_text("# hidden\n")
    (notes / "paper.pdf").write_bytes(minimal_pdf(["Register blocking for matmul", "Results: 4x faster"],
                                                  title="Anatomy of a fast GEMM"))
    (notes / "untitled.pdf").write_bytes(minimal_pdf(["Vectorised inner loops"]))
    (notes / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")

    source = LocalNotes([notes], root)
    items = {item.id: item for item in source.search("anything", 1)}

    assert set(items) == {"local:notes/tiling.md", "local:notes/deep/plain.markdown", "local:notes/log.txt",
                          "local:notes/paper.pdf", "local:notes/untitled.pdf"}
    md = items["local:notes/tiling.md"]
    assert (md.kind, md.title, md.url, md.source) == ("note", "Cache tiling for GEMM", "", "local")
    assert md.text.startswith("Some preamble") and "Block the loops." in md.text
    assert len(md.signals["updated"]) == 10  # an ISO date
    assert items["local:notes/deep/plain.markdown"].title == "No heading here"
    assert items["local:notes/log.txt"].title == "Profiling log of the kernel"
    pdf = items["local:notes/paper.pdf"]
    assert pdf.title == "Anatomy of a fast GEMM"
    assert "Register blocking for matmul" in pdf.text and "4x faster" in pdf.text
    assert items["local:notes/untitled.pdf"].title == "Vectorised inner loops"
    assert len(source.notices) == 1 and "broken.pdf" in source.notices[0] and "skipped" in source.notices[0]


def test_notes_missing_folder_and_ids_relative_to_root(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "n.md").write_text("# N\n")
    source = LocalNotes([tmp_path / "a", tmp_path / "nowhere"], tmp_path)
    items = source.search("", 5)
    assert [item.id for item in items] == ["local:a/b/n.md"]
    assert any("nowhere" in notice for notice in source.notices)


def test_notes_have_a_generous_cap(tmp_path):
    for i in range(205):
        (tmp_path / f"n{i:03d}.md").write_text(f"# note {i}\n")
    source = LocalNotes([tmp_path], tmp_path)
    assert len(source.search("", 3)) == 200
    assert source.notices


def test_local_competitors_folder_bundle_and_missing(tmp_path):
    root = tmp_path / "task"
    repo = make_repo(root / "rivals" / "fastlib", {"README.md": "# fastlib: blocked GEMM in C\n\nDetails.\n",
                                                   "gemm.c": "void gemm(void) {}\n"})
    bare = root / "rivals" / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    norepo = root / "plain"
    norepo.mkdir()
    bundle = root / "rivals" / "other.bundle"
    other = make_repo(tmp_path / "other", {"x.c": "int x;\n"})
    git(other, "bundle", "create", str(bundle), "HEAD", "main")

    source = LocalCompetitors(["rivals/fastlib", "rivals/bare.git", "./rivals/other.bundle", "missing/repo",
                               "plain"], root)
    items = {item.id: item for item in source.search("q", 10)}

    assert set(items) == {"local:rivals/fastlib", "local:rivals/bare.git", "local:rivals/other.bundle"}
    folder = items["local:rivals/fastlib"]
    assert folder.kind == "competitor" and folder.source == "local"
    assert folder.title == "fastlib: blocked GEMM in C"
    assert "Details." in folder.text
    assert folder.meta == {"clone_url": str(repo.resolve()), "local": True}
    assert Path(folder.meta["clone_url"]).is_absolute()
    assert items["local:rivals/bare.git"].title == "bare: fastlib: blocked GEMM in C"
    assert items["local:rivals/other.bundle"].title == "other: local competitor"
    assert any("missing/repo" in notice and "not found" in notice for notice in source.notices)
    assert any("plain" in notice and "not a git repository" in notice for notice in source.notices)


def test_demo_notes_and_competitor():
    notes = LocalNotes([DEMO / "notes"], DEMO).search("", 10)
    assert "local:notes/loop-order.md" in {item.id for item in notes}
    (competitor,) = LocalCompetitors(["competitors/fast-matmul.bundle"], DEMO).search("", 1)
    assert competitor.id == "local:competitors/fast-matmul.bundle"
    assert competitor.title.startswith("fast-matmul: ")
    assert competitor.meta["local"] is True
