"""Paths shared by the repository-level tests."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"
SEED_QUESTIONS = REPO.parent / "shared" / "seeds" / "QUESTIONS.tsv"  # present beside the development checkout
