"""Cargo: `cargo bench` (criterion, or bencher-format output), `cargo test`, `cargo build --release`."""

from __future__ import annotations

from pathlib import Path

from . import Finding, Step, read


def detect(repo: Path) -> Finding | None:
    manifest = repo / "Cargo.toml"
    if not manifest.is_file():
        return None
    text = read(manifest)
    finding = Finding("cargo", build=Step("cargo build --release", "Cargo.toml"),
                      check=Step("cargo test --release", "Cargo.toml", guessed=True))
    criterion = "criterion" in text
    if criterion or (repo / "benches").is_dir() or "[[bench]]" in text:
        why = "criterion in Cargo.toml" if criterion else "benches/ in Cargo.toml's package"
        finding.bench = Step("cargo bench", why)
        finding.format = "criterion"  # criterion's report, or libtest's bencher lines
    return finding
