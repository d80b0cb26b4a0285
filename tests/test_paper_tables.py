"""Spot-check leaderboards/papers/*.csv against the extracted paper texts (../shared/papers).

For each checked row, the number string must occur in the paper text inside the block that
follows the table's caption, on the line that carries the row's label; this reads the paper, not
the CSV, so a transcription error fails.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPERS_CSV = ROOT / "leaderboards" / "papers"
PAPERS_TXT = Path(os.environ.get("FACEEDIT_PAPERS", ROOT.parent / "shared" / "papers"))


def _rows(name: str) -> list[dict]:
    with open(PAPERS_CSV / name, newline="") as f:
        return list(csv.DictReader(f))


def _value(name: str, row_prefix: str, metric: str) -> str:
    hits = [r["value"] for r in _rows(name) if r["row"].startswith(row_prefix) and r["metric"] == metric]
    assert len(hits) == 1, f"{name}: expected one {row_prefix!r}/{metric} row, found {len(hits)}"
    return hits[0]


def _table_block(text_file: str, caption: str, n_lines: int = 30) -> list[str]:
    path = PAPERS_TXT / text_file
    if not path.is_file():
        pytest.skip(f"paper text {path} not present (set FACEEDIT_PAPERS)")
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith(caption)]
    assert starts, f"{path}: caption {caption!r} not found"
    return lines[starts[0]: starts[0] + n_lines]


def _line_with(block: list[str], label: str) -> str:
    pat = re.compile(r"^\s*" + re.escape(label) + r"(\s|$)")
    hits = [line for line in block if pat.search(line)]
    assert hits, f"row label {label!r} not found in the table block"
    return hits[0]


# (csv, row prefix, metric, paper file, caption start, row label in the paper text, column index of the value among numbers)
CASES = [
    ("maggan_table1.csv", "STGAN(256)", "mre", "maggan.txt", "Table 1: Comparison of quantitative", "STGAN(256)", 0),
    ("maggan_table1.csv", "MagGAN(1024)", "psnr", "maggan.txt", "Table 1: Comparison of quantitative", "MagGAN(1024)", 3),
    ("maggan_table1.csv", "AttGAN(128)", "tarr", "maggan.txt", "Table 1: Comparison of quantitative", "AttGAN(128)", 2),
    ("maggan_table3.csv", "(iii) STGAN w/ Lmre", "tarr", "maggan.txt", "Table 3: Comparison of variants", "(iii) STGAN w/ Lmre", 2),
    ("maggan_table3.csv", "(vii) MagGAN+Seg", "fid", "maggan.txt", "Table 3: Comparison of variants", "(vii) MagGAN+Seg", 1),
    ("maggan_table7.csv", "lambda3 = 100", "mre", "maggan.txt", "Table 7: Comparison of different", "λ3 = 100", 0),
    ("maggan_table8.csv", "MagGAN w/ blend", "ssim", "maggan.txt", "Table 8: Comparison of MagGAN", "MagGAN w/ blend", 4),
]


def _numbers(line: str, label: str) -> list[str]:
    rest = line.strip()[len(label):]
    return re.findall(r"\d+\.\d+", rest)


@pytest.mark.parametrize("csv_name,row,metric,txt,caption,label,col", CASES)
def test_maggan_numbers_match_paper(csv_name, row, metric, txt, caption, label, col):
    block = _table_block(txt, caption)
    numbers = _numbers(_line_with(block, label), label)
    assert len(numbers) == 5, f"expected 5 numbers on the {label!r} line, got {numbers}"
    assert _value(csv_name, row, metric) == numbers[col]


def test_secgan_table1_numbers():
    # Table 1's body precedes its caption in the extraction: read the tab-separated rows above it
    path = PAPERS_TXT / "secgan.txt"
    if not path.is_file():
        pytest.skip(f"paper text {path} not present")
    lines = path.read_text(encoding="utf-8").splitlines()
    cap = next(i for i, line in enumerate(lines) if line.startswith("Table 1. **Baselines vs our method"))
    body = [line for line in lines[cap - 15: cap] if "\t" in line and re.search(r"\d+\.\d+", line)]
    nums = [re.findall(r"\d+\.\d+", line) for line in body]
    assert len(nums) == 10
    assert _value("secgan_table1.csv", "AttGAN SeCGAN (ours)", "tarr") == nums[5][0]
    assert _value("secgan_table1.csv", "StarGAN Concat", "ssfid") == nums[1][1]
    assert _value("secgan_table1.csv", "StarGAN SeCGAN (256 block, rows 3-4)", "is") == nums[9][2]


def test_gu_tables_numbers():
    b1 = _table_block("mask_guided_portrait_editing.txt", "Table 1: Quantitative comparison", 8)
    fid_line = _line_with(b1, "FID")
    assert fid_line.split()[1:] == [_value("mgpe_table1.csv", "Setting 1", "fid"),
                                    _value("mgpe_table1.csv", "Setting 2", "fid"),
                                    _value("mgpe_table1.csv", "ours", "fid")]
    b2 = _table_block("mask_guided_portrait_editing.txt", "Table 2: Comparison of face parsing", 10)
    assert _line_with(b2, "w face parsing networks").split()[-1] == _value("mgpe_table2.csv", "w face", "parsing_pixel_acc")
    b3 = _table_block("mask_guided_portrait_editing.txt", "Table 3: Results of face parsing", 10)
    assert _line_with(b3, "Helen + generated").split()[-1] == _value("mgpe_table3.csv", "Helen + generated", "parsing_acc")


def test_every_row_cites_paper_and_table():
    files = sorted(PAPERS_CSV.glob("*.csv"))
    assert len(files) >= 8
    for f in files:
        for i, r in enumerate(_rows(f.name), start=2):
            assert r["paper"] and r["source"] and r["table"].startswith("Table "), f"{f.name}:{i}"
            float(r["value"])  # a number, as printed
            assert r["higher_is_better"] in ("0", "1"), f"{f.name}:{i}: higher_is_better"


def test_sources_point_at_the_table_caption():
    """Every row's ``source`` is ``papers/<file>.txt:<line>`` and that line of the paper text is
    the caption of the row's table."""
    import re

    for f in sorted(PAPERS_CSV.glob("*.csv")):
        for i, r in enumerate(_rows(f.name), start=2):
            m = re.fullmatch(r"papers/([\w.]+\.txt):(\d+)", r["source"])
            assert m, f"{f.name}:{i}: source {r['source']!r} is not papers/<file>.txt:<line>"
            path = PAPERS_TXT / m.group(1)
            if not path.is_file():
                pytest.skip(f"paper text {path} not present (set FACEEDIT_PAPERS)")
            line = path.read_text(encoding="utf-8").splitlines()[int(m.group(2)) - 1]
            assert re.match(rf"\s*{r['table']}\s*[:.]", line), f"{f.name}:{i}: {path}:{m.group(2)} is {line!r}"
