"""LaTeX (booktabs) and Markdown rendering of the paper's tables, written by hand.

Why no library: polars has no LaTeX writer; pandas' ``Styler.to_latex`` would pull pandas and jinja2 into
the pipeline and offers no per-cell bold, significance superscripts, outcome group rows or ``longtable``
captions without templating, and its escaping does not cover the Unicode our labels use (Δ, ρ, ≥, ²);
pylatexenc is not a dependency. What we need is ~10 escaped characters and a booktabs skeleton, so a
:class:`Cell` carries its Markdown text and its LaTeX text side by side, and a :class:`TableSpec`
renders both from the same rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# LaTeX special characters and the Unicode our labels use; everything else passes through unchanged.
_TEX_MAP = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "Δ": r"$\Delta$",
    "ρ": r"$\rho$",
    "²": r"$^{2}$",
    "±": r"$\pm$",
    "×": r"$\times$",
    "−": r"$-$",
    "–": "--",
    "—": "---",
    "°": r"\textdegree{}",
    "µ": r"$\mu$",
    "→": r"$\rightarrow$",
    "…": r"\ldots{}",
}

NA = "n/a"


def tex_escape(text: object) -> str:
    """Escape a plain string for LaTeX text mode (special characters and the Unicode symbols we use)."""
    return "".join(_TEX_MAP.get(ch, ch) for ch in str(text))


def md_escape(text: object) -> str:
    """Escape a plain string for a Markdown table cell (pipes and asterisks)."""
    return str(text).replace("|", "\\|").replace("*", "\\*")


@dataclass(frozen=True)
class Cell:
    """One table cell: its Markdown text and its LaTeX text (already escaped / typeset)."""

    md: str
    tex: str

    @classmethod
    def text(cls, s: object) -> Cell:
        """A plain-text cell, escaped for both targets."""
        return cls(md_escape(s), tex_escape(s))

    def bold(self) -> Cell:
        """The same cell in bold face."""
        return Cell(f"**{self.md}**", rf"\textbf{{{self.tex}}}") if self.md not in ("", NA) else self

    def marked(self, marker: bool, symbol: str = "*") -> Cell:
        """Append a significance marker (superscript in LaTeX) when ``marker`` is true."""
        if not marker:
            return self
        return Cell(f"{self.md}{md_escape(symbol)}", f"{self.tex}$^{{{symbol}}}$")


def is_missing(x: object) -> bool:
    """True for None and NaN (the statistics tables use NaN for undefined values)."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_float(x: float | None, digits: int, signed: bool = False) -> str:
    """A fixed-point number as plain text (ASCII minus), ``n/a`` when missing."""
    if is_missing(x):
        return NA
    s = f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    if float(s) == 0:  # no "-0.000"
        s = f"{0:+.{digits}f}" if signed else f"{0:.{digits}f}"
    return s


def _tex_num(s: str) -> str:
    return s.replace("-", "$-$", 1) if s.startswith("-") else s


def num(x: float | None, digits: int = 3, signed: bool = False) -> Cell:
    """A number cell (math minus in LaTeX)."""
    s = fmt_float(x, digits, signed)
    return Cell(s, _tex_num(s))


def ci(point: float | None, lo: float | None, hi: float | None, digits: int = 3, signed: bool = False) -> Cell:
    """``point [lo, hi]``; the interval is left out when it is missing."""
    p = fmt_float(point, digits, signed)
    if p == NA:
        return Cell(NA, NA)
    if is_missing(lo) or is_missing(hi):
        return Cell(p, _tex_num(p))
    a, b = fmt_float(lo, digits, signed), fmt_float(hi, digits, signed)
    return Cell(f"{p} [{a}, {b}]", f"{_tex_num(p)} [{_tex_num(a)}, {_tex_num(b)}]")


def count(n: int | None) -> Cell:
    """An integer with thousands separators (``53,978`` / ``53{,}978``)."""
    if is_missing(n):
        return Cell(NA, NA)
    s = f"{int(n):,}"
    return Cell(s, s.replace(",", "{,}"))


def pvalue(p: float | None) -> Cell:
    """A p-value: three decimals, ``<0.001`` below that."""
    if is_missing(p):
        return Cell(NA, NA)
    if p < 0.001:
        return Cell("<0.001", r"$<$0.001")
    return Cell(f"{p:.3f}", f"{p:.3f}")


def magnitude_digits(x: float | None) -> int:
    """Decimals that keep about three significant figures for errors in physical units (MAE, RMSE)."""
    if is_missing(x) or x == 0:
        return 3
    a = abs(float(x))
    return 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3


@dataclass(frozen=True)
class Column:
    """A column: header (plain text, escaped by the renderer unless ``header_tex`` is given) and alignment."""

    header: str
    align: str = "l"
    header_tex: str | None = None


@dataclass(frozen=True)
class Group:
    """A full-width group title row (e.g. the outcome above its handles)."""

    title: str


@dataclass
class TableSpec:
    """A table ready to render: caption, label, columns and rows (cells or group rows)."""

    name: str
    caption: str
    columns: list[Column]
    rows: list[list[Cell] | Group] = field(default_factory=list)
    long: bool = False  # longtable (breaks across pages) instead of a table float
    landscape: bool = False
    size: str = r"\small"
    notes: str = ""  # plain text under the table

    @property
    def label(self) -> str:
        return f"tab:{self.name}"

    def _check(self) -> None:
        for i, row in enumerate(self.rows):
            if not isinstance(row, Group) and len(row) != len(self.columns):
                raise ValueError(f"table {self.name}: row {i} has {len(row)} cells, expected {len(self.columns)}")

    def to_tex(self) -> str:
        """A complete booktabs table (float or longtable) with caption and label."""
        self._check()
        spec = "".join(c.align for c in self.columns)
        head = " & ".join(c.header_tex if c.header_tex is not None else tex_escape(c.header) for c in self.columns)
        n = len(self.columns)
        body: list[str] = []
        for row in self.rows:
            if isinstance(row, Group):
                if body:
                    body.append(r"\addlinespace")
                body.append(rf"\multicolumn{{{n}}}{{l}}{{\textit{{{tex_escape(row.title)}}}}} \\")
            else:
                body.append(" & ".join(c.tex for c in row) + r" \\")
        caption = tex_escape(self.caption)
        notes = rf"\par\smallskip{{\footnotesize {tex_escape(self.notes)}}}" if self.notes else ""
        lines = [f"% generated by irbench_assets.paper ({self.name}); do not edit"]
        if self.landscape:
            lines.append(r"\begin{landscape}")
        if self.long:
            lines += [
                "{" + self.size,
                rf"\begin{{longtable}}{{{spec}}}",
                rf"\caption{{{caption}}}\label{{{self.label}}} \\",
                r"\toprule", head + r" \\", r"\midrule", r"\endfirsthead",
                rf"\multicolumn{{{n}}}{{l}}{{\textit{{(continued)}}}} \\",
                r"\toprule", head + r" \\", r"\midrule", r"\endhead",
                r"\bottomrule", r"\endfoot",
                *body,
                r"\end{longtable}",
                notes + "}" if notes else "}",
            ]
        else:
            lines += [
                r"\begin{table}[htbp]", r"\centering", self.size,
                rf"\caption{{{caption}}}\label{{{self.label}}}",
                rf"\begin{{tabular}}{{{spec}}}",
                r"\toprule", head + r" \\", r"\midrule",
                *body,
                r"\bottomrule", r"\end{tabular}",
            ]
            if notes:
                lines.append(notes)
            lines.append(r"\end{table}")
        if self.landscape:
            lines.append(r"\end{landscape}")
        return "\n".join(lines) + "\n"

    def to_markdown(self, max_rows: int | None = None) -> str:
        """A GitHub Markdown rendering (caption as a bold line; group rows as italic rows)."""
        self._check()
        n = len(self.columns)
        lines = [f"**{md_escape(self.caption)}**", "",
                 "| " + " | ".join(md_escape(c.header) for c in self.columns) + " |",
                 "|" + "".join("---:|" if c.align == "r" else "---|" for c in self.columns)]
        rows = self.rows if max_rows is None else self.rows[:max_rows]
        for row in rows:
            if isinstance(row, Group):
                lines.append("| " + " | ".join([f"*{md_escape(row.title)}*"] + [""] * (n - 1)) + " |")
            else:
                lines.append("| " + " | ".join(c.md for c in row) + " |")
        if max_rows is not None and len(self.rows) > max_rows:
            lines.append(f"\n… {len(self.rows) - max_rows} more rows")
        if self.notes:
            lines += ["", md_escape(self.notes)]
        return "\n".join(lines) + "\n"


def macro_name(*parts: str) -> str:
    """A LaTeX command name from parts: letters only, digits spelled out (``exp1`` → ``ExpOne``)."""
    words = {"0": "Zero", "1": "One", "2": "Two", "3": "Three", "4": "Four", "5": "Five", "6": "Six",
             "7": "Seven", "8": "Eight", "9": "Nine"}
    out = []
    for part in parts:
        for token in part.replace("-", "_").split("_"):
            buf = ""
            for ch in token:
                if ch.isdigit():
                    buf += words[ch]
                elif ch.isalpha() and ch.isascii():
                    buf += ch
            out.append(buf[:1].upper() + buf[1:])
    name = "".join(out)
    if not name or not name.isalpha():
        raise ValueError(f"cannot form a LaTeX macro name from {parts!r}")
    return name


def render_macros(macros: list[tuple[str, Cell]]) -> str:
    """``\\newcommand`` lines for (name, value) pairs, in the given order; names must be unique."""
    seen: set[str] = set()
    lines = ["% generated by irbench_assets.paper (macros); every number in the text comes from here"]
    for name, value in macros:
        if name in seen:
            raise ValueError(f"macro \\{name} defined twice")
        seen.add(name)
        lines.append(rf"\newcommand{{\{name}}}{{{value.tex}}}")
    return "\n".join(lines) + "\n"
