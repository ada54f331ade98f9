"""`clean` deletes only what mailstack wrote: a mistyped --build-dir must not cost a file."""

from __future__ import annotations

from pathlib import Path

from stack.layout import BuildLayout


def make_build(root: Path) -> BuildLayout:
    layout = BuildLayout(root)
    for folder in ("pki", "secrets", "context/postfix", "harness/test", "bench"):
        (root / folder).mkdir(parents=True)
        (root / folder / "file").write_text("x")
    layout.compose_env.write_text("A=1\n")
    layout.target.write_text("{}")
    return layout


def test_a_build_folder_is_removed_entirely(tmp_path: Path) -> None:
    layout = make_build(tmp_path / "build")
    assert layout.remove_generated() == []
    assert not layout.root.exists()


def test_files_mailstack_did_not_write_are_kept_with_their_folder(tmp_path: Path) -> None:
    layout = make_build(tmp_path)  # e.g. --build-dir . in a checkout
    (tmp_path / "mywork.txt").write_text("precious")
    (tmp_path / ".git").mkdir()
    assert layout.remove_generated() == [".git", "mywork.txt"]
    assert (tmp_path / "mywork.txt").read_text() == "precious"
    assert not (tmp_path / "pki").exists() and not layout.target.exists()


def test_a_missing_folder_is_nothing_to_do(tmp_path: Path) -> None:
    assert BuildLayout(tmp_path / "never-built").remove_generated() == []
