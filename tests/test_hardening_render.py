"""One way to render outside text (issue 20.2): pages and ``ui`` pass text to Streamlit's Markdown renderers
(``st.markdown``, ``caption``, ``write``, ``info``, ``warning``, ``error``, ``success``, ``toast``, titles) only
as literals, through the safe helpers (``ui.plain`` for names, file names, zone names, CSV cells, judge
replies and error messages; ``ui.safe_md`` / ``ui.show_text`` for model answers), or as expressions that are
provably Sprout's own (numbers with a format spec, ``style`` formatters, the allow-list below, each entry with
its reason). The test fails on any other argument, naming the file, line and expression."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "pages").glob("*.py")) + [ROOT / "sprout_core" / "ui.py"]
RENDERERS = {"markdown", "caption", "write", "info", "warning", "error", "success", "toast", "title", "header",
             "subheader"}
#: calls whose result is safe Markdown (they escape or break outside text themselves, or format numbers)
SAFE_CALLS = {"plain", "safe_md", "error_text", "method_badge", "level_chip", "live_energy_caption", "len", "int",
              "float", "round", "sum", "min", "max"}
#: modules whose functions return Sprout's own text from numbers (units, counts, timestamps)
SAFE_MODULES = {"style"}
#: expressions (``ast.unparse``, full match) that are Sprout's own text anywhere, with the reason
INTERNAL = {
    r"(?:[A-Za-z_]+\.)*[A-Z][A-Z0-9_]*": "module constants: Sprout's own sentences",
    r"(?:[a-z_]+\.)*(?:level|lv|judge|vote|mode_txt|under|title|cats|method|placement|device|column|shares|"
    r"tok|sec|en|emb|carbon_txt|fixed|basis|empty|directive_set|embodied\.name)": "Sprout's names and words the page composed: levels, judges, "
                                                     "methods, devices, units (never typed or uploaded)",
    r"(?:res|summ|a|live)\[[^\]]+\]|res\.get\(.*\)": "result tables Sprout computed (profile labels, methods, counts)",
    r"(?:V|run_views|L|R|H|task_views)\.[a-z_]+\(.*\)": "views compose sentences from numbers and Sprout's names",
    r"(?:configure_threads|default_threads|torch\.get_num_threads)\(.*\)": "numbers",
    r"(?:step|d|hv|wv|line|run|counts|meter|meter\.model|embodied|ds|spec|prof|job\.judge|t|_rev)\.(?:describe\(\)|"
    r"summary\(\)|sentence\(\)|sentence|note|message|text|caption|promise_text|name|purpose|purpose\.rstrip\(.*\)|"
    r"label|q_source|source|description|method)": "Sprout's own objects: lesson steps, decisions, strategies, "
                                                 "meters, data sets, profiles (built in sprout_core from constants)",
    r"outcomes\[0\]\.reading\.source|carbon_settings\.intensity\.(?:column|ci_g_per_kwh)": "the meter's own words",
    r"'(?:message|turn)' if .*": "a literal choice",
}
#: per file: names bound to Sprout's own sentences there (views' notes and checks), with the reason
PER_FILE = {
    "optimizer.py": {"hour_msg": "views.optimizer.check_hour's message", "n": "the decision's notes (views)",
                     "msg.replace('No decision is shown for it.', 'No window is replayed from it.')": "check_hour"},
    "lesson.py": {"w": "metered.default_settings' warnings (Sprout's sentences about the zone setting)",
                  "note": "the run's notes (views)"},
    "evaluations.py": {"sentence": "views.evaluations.judge_bias sentences (numbers and level names)"},
    "playground.py": {"m": "energy method labels (measured:…, estimated:…)", "note": "the run's notes (views)",
                      "caps_line": "ui.class_caps_line(): the operator's caps as numbers",
                      "_ans.label": "the blind pair's 'A' / 'B'"},
    "whatif.py": {"lab": "window labels Sprout made", "problems": "literal sentences appended above"},
    "home.py": {"name": "H.PAGES keys (page titles)", "what": "H.PAGES values (Sprout's sentences)"},
    "ui.py": {"body": "level_heading: html.escape(safe_md(directive))", "tail": "level_heading: escaped",
              "label": "page_link's label: a literal of the caller", "Path(page).stem": "a page file's name",
              "note": "the meter's own notes", "n": "a count", "where": "a literal sentence chosen above"},
}
_FILE = [""]


def _internal(expr: ast.AST) -> bool:
    src = ast.unparse(expr)
    if src in PER_FILE.get(_FILE[0], {}):
        return True
    return any(re.fullmatch(p, src) for p in INTERNAL)


def _ok(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) or v.format_spec is not None or _ok(v.value) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _ok(node.left) and _ok(node.right)
    if isinstance(node, ast.IfExp):
        return _ok(node.body) and _ok(node.orelse)
    if isinstance(node, ast.BoolOp):
        return all(_ok(v) for v in node.values)
    if isinstance(node, ast.Call):
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
        if name in SAFE_CALLS or owner in SAFE_MODULES or name.startswith("fmt_"):
            return True
        if name == "join" and isinstance(f, ast.Attribute) and isinstance(f.value, ast.Constant):
            return all(_ok(a) for a in node.args) or _ok_iter(node.args[0])
    if isinstance(node, (ast.GeneratorExp, ast.ListComp)):
        return _ok(node.elt)
    return _internal(node)


def _ok_iter(node: ast.AST) -> bool:
    return isinstance(node, (ast.GeneratorExp, ast.ListComp)) and _ok(node.elt)


def violations(path: Path) -> list[str]:
    """``file:line: expression`` of every render call whose text is not provably safe."""
    out = []
    _FILE[0] = path.name
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RENDERERS):
            continue
        if isinstance(node.func.value, ast.Name) and node.func.value.id in ("re", "logging", "log", "warnings"):
            continue
        args = list(node.args[:1]) + [k.value for k in node.keywords if k.arg == "body"]
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        out += [(node.lineno, f"{name}:{node.lineno}: {ast.unparse(a)[:120]}") for a in args if not _ok(a)]
    return [v for _, v in sorted(out)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_outside_text_goes_through_the_safe_helpers(path):
    bad = violations(path)
    assert not bad, "render these through ui.plain / ui.safe_md (or prove them internal):\n" + "\n".join(bad)


def test_the_scanner_catches_what_it_must(tmp_path):
    """A test that cannot fail is a defect: the scanner flags raw outside text in each form."""
    page = tmp_path / "p.py"
    page.write_text("import streamlit as st\nfrom sprout_core import ui\n"
                    "st.markdown(info.zone_name)\n"                      # a raw name
                    "st.caption(f'Added {name} ({up.name})')\n"          # in an f-string
                    "st.success('Added ' + zone_label)\n"                # concatenated
                    "st.error(str(exc))\n"                               # an exception's text
                    "col.info(f'{n:,} hours')\n"                         # fine: a number
                    "st.caption(f'Added {ui.plain(name)}')\n"            # fine: escaped
                    "st.markdown(ui.safe_md(answer))\n", encoding="utf-8")
    got = [v.split(": ", 1)[1] for v in violations(page)]
    assert got == ["info.zone_name", "f'Added {name} ({up.name})'", "'Added ' + zone_label", "str(exc)"]


def test_plain_leaves_no_markdown_image_link_or_html():
    from sprout_core import ui

    for hostile in ["![x](http://127.0.0.1:9/beacon)", "[a](javascript:alert(1))", "<img src=x onerror=alert(1)>",
                    "<http://e.x>", "http://e.x/a", "www.e.x", "a@b.example", "$\\href{http://e.x}{x}$", "**b** _i_",
                    "[ref]: http://e.x", "`code`", "# title", "- item"]:
        s = ui.plain(hostile)
        assert "http://" not in s and "www." not in s and "a@b" not in s  # no literal autolink can start
        assert not re.search(r"(?<!\\)[\[\]<>*_`$!]", s), s  # every sign that opens something is escaped
        assert not re.match(r"\s*(?:#|-|\d+\.)", s), s       # no heading or list at the start
