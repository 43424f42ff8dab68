"""Evaluation output: append-only JSONL records, JSON/Markdown result tables, bar charts, per-query files.

A table is ``{row name: {column: value}}``; values are numbers, strings or None.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

Table = Mapping[str, Mapping[str, object]]


# ---------------------------------------------------------------- JSONL

def append_jsonl(path: Path | str, record: Mapping) -> None:
    """Append one record as one line and flush it to disk (a crash loses at most the line being written)."""
    try:
        line = json.dumps(record, ensure_ascii=False)
    except TypeError as e:
        raise TypeError(f"record for {path} is not JSON-serialisable: {e}") from None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def resume_jsonl(path: Path, key: str, resume: bool, noun: str = "records") -> dict[str, dict]:
    """Records already in an append-only run file, by `key`; with resume=False an existing file is an error."""
    done = {r[key]: r for r in read_jsonl(path, repair=True)} if path.exists() else {}
    if done and not resume:
        raise FileExistsError(f"{path} already holds {len(done)} {noun}; pass resume=True or another path")
    return done


def read_jsonl(path: Path | str, repair: bool = False) -> list[dict]:
    """All records of a JSONL file. A final line cut short by a crash (no newline, not valid JSON) is an error,
    or with repair=True is cut off the file (and a missing final newline added) so appending can go on.
    Damage elsewhere is always an error."""
    path = Path(path)
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1  # start of the last line
        try:
            json.loads(data[cut:])
            if repair:  # a complete record that only lacks its newline
                with open(path, "ab") as f:
                    f.write(b"\n")
        except json.JSONDecodeError:
            if not repair:
                raise ValueError(f"{path}: last line is truncated ({len(data) - cut} bytes)") from None
            with open(path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
    records = []
    for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: invalid JSON ({e.msg})") from None
    return records


# ---------------------------------------------------------------- tables

def _columns(table: Table) -> list[str]:
    cols: list[str] = []
    for row in table.values():
        cols.extend(c for c in row if c not in cols)
    return cols


def _cell(value: object, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table, digits: int = 3, first_column: str = "") -> str:
    cols = _columns(table)
    lines = ["| " + " | ".join([first_column] + cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for name, row in table.items():
        lines.append("| " + " | ".join([_cell(name, digits)] + [_cell(row.get(c), digits) for c in cols]) + " |")
    return "\n".join(lines)


def write_json(data: object, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path


def write_markdown(sections: Mapping[str, Table | str], path: Path | str, title: str, digits: int = 3) -> Path:
    """A Markdown report: a title, then one heading per section holding a table or prose."""
    parts = [f"# {title}", ""]
    for heading, body in sections.items():
        parts += [f"## {heading}", "", body if isinstance(body, str) else markdown_table(body, digits), ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def bar_chart(rows: Table, metrics: Sequence[str], path: Path | str, title: str, ylabel: str = "") -> Path:
    """Grouped bars: one group per metric, one bar per row (system). Missing values are left out."""
    if not rows or not metrics:
        raise ValueError("bar_chart needs at least one row and one metric")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(metrics) * max(1, len(rows)) ** 0.5 + 2), 4.5))
    for i, (name, row) in enumerate(rows.items()):
        xs, ys = [], []
        for j, m in enumerate(metrics):
            v = row.get(m)
            if isinstance(v, (int, float)) and not math.isnan(v):
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(float(v))
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="best")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_per_query(per_query: Mapping[str, Mapping[str, object]], path: Path | str,
                    extra: Mapping[str, Mapping[str, object]] | None = None) -> Path:
    """One row per query: TSV when the path ends in .tsv, else JSONL. ``extra`` adds columns (e.g. query set)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = {qid: {**(extra or {}).get(qid, {}), **values} for qid, values in per_query.items()}
    if path.suffix == ".tsv":
        cols = _columns(rows)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\t".join(["qid"] + cols) + "\n")
            for qid, row in rows.items():
                f.write("\t".join([qid] + [_tsv(row.get(c)) for c in cols]) + "\n")
    else:
        with open(path, "w", encoding="utf-8") as f:
            for qid, row in rows.items():
                f.write(json.dumps({"qid": qid, **row}, ensure_ascii=False) + "\n")
    return path


def _tsv(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("\t", " ").replace("\n", " ")

