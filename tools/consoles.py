"""Writes Prometheus console pages (deploy/prometheus/consoles/) from the dashboards' table
of panels (dashboards.py): the same figures, served live by the Prometheus that `make run`
starts, where no Grafana runs (Grafana is no Debian package).

    uv run python tools/consoles.py      (a test fails when the pages are not current)

Prometheus expands the pages with Go's html/template, which escapes every value for where
it lands (HTML, a URL, a script); the community parameter is stripped of quotes and
backslashes before it goes into a query.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboards import DASHBOARDS, legend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONSOLES = ROOT / "deploy" / "prometheus" / "consoles"
LIBRARIES = ROOT / "deploy" / "prometheus" / "console_libraries"
REFRESH_S = 15
MISSING = '<span class="missing">no data</span>'

# How a value of each panel unit is shown: a template action for the value `v`. Counts as
# whole numbers (a leader reads "2159", not humanize's "2.159k").
FORMAT = {"percentunit": "{{{{ {v} | humanizePercentage }}}}", "none": '{{{{ template "ganshou_number" {v} }}}}',
          "currencyCNY": '{{{{ {v} | printf "¥%.2f" }}}}', "s": "{{{{ {v} | humanizeDuration }}}}",
          "reqps": '{{{{ {v} | humanize | printf "%s/s" }}}}'}
# prom_console.js's formatters (it has no percentage or duration one); the axis says the unit.
GRAPH_FORMAT = {"s": "humanize"}
GRAPH_TITLE = {"s": "seconds", "reqps": "per second"}


def _shown(unit: str, value: str) -> str:
    return FORMAT[unit].format(v=value)


def _query(expr: str) -> str:
    """The expression as a template expression, the community filled in."""
    if "$community" not in expr:
        return f"`{expr}`"
    return f"(printf `{expr.replace('%', '%%').replace('$community', '%s')}` $c)"


def _value(expr: str, unit: str) -> str:
    return f"{{{{ with query {_query(expr)} }}}}{_shown(unit, '(. | first | value)')}{{{{ else }}}}{MISSING}{{{{ end }}}}"


def _label(legend_format: str) -> str | None:
    m = re.fullmatch(r"\{\{(\w+)\}\}", legend_format)
    return m.group(1) if m else None


def _stat(title: str, unit: str, exprs: list[str]) -> str:
    return f"<tr><th>{title}</th><td>{' / '.join(_value(e, unit) for e in exprs)}</td></tr>"


def _bars(title: str, unit: str, exprs: list[str]) -> str:
    rows = []
    for i, e in enumerate(exprs):
        label = _label(legend(title, e, i, len(exprs))) or "__name__"
        rows.append(f"{{{{ range query {_query(e)} | sortByLabel \"{label}\" }}}}"
                    f"<tr><td>{{{{ .Labels.{label} }}}}</td><td>{_shown(unit, '.Value')}</td></tr>"
                    f"{{{{ else }}}}<tr><td colspan=\"2\">{MISSING}</td></tr>{{{{ end }}}}")
    return f"<h3>{title}</h3>\n<table class=\"table table-sm ganshou-bars\">\n" + "\n".join(rows) + "\n</table>"


def _graph(n: int, title: str, unit: str, exprs: list[str]) -> str:
    names = []
    for i, e in enumerate(exprs):
        lf = legend(title, e, i, len(exprs))
        names.append(re.sub(r"\{\{(\w+)\}\}", r"[[\1]]", lf) if lf else title)
    fmt = f"PromConsole.NumberFormatter.{GRAPH_FORMAT.get(unit, 'humanizeNoSmallPrefix')}"
    exprs_js = ", ".join(f"{{{{ {_query(e)} }}}}" for e in exprs)  # html/template writes each as a JS string
    names_js = ", ".join(f'"{name}"' for name in names)
    return (f"<h3>{title}</h3>\n<div id=\"graph{n}\"></div>\n<script>\nnew PromConsole.Graph({{\n"
            f"  node: document.querySelector(\"#graph{n}\"), expr: [{exprs_js}], name: [{names_js}],\n"
            f"  yAxisFormatter: {fmt}, yHoverFormatter: {fmt}, yTitle: \"{GRAPH_TITLE.get(unit, '')}\", duration: \"1h\"\n}});\n</script>")


def page(title: str, panels: list) -> str:
    stats = [_stat(t, u, e) for t, kind, u, e in panels if kind == "stat"]
    rest = [_bars(t, u, e) if kind == "bargauge" else _graph(n, t, u, e)
            for n, (t, kind, u, e) in enumerate(panels) if kind != "stat"]
    body = (['<table class="table table-sm ganshou-stats">\n' + "\n".join(stats) + "\n</table>"] if stats else []) + rest
    return (f"{{{{ template \"ganshou_head\" . }}}}\n{{{{ $c := reReplaceAll \"[\\\"\\\\\\\\]\" \"\" .Params.community }}}}\n"
            f"<h1>{title}</h1>\n{{{{ template \"ganshou_scope\" . }}}}\n" + "\n".join(body)
            + "\n{{ template \"ganshou_tail\" . }}\n")


def index() -> str:
    boards = "\n".join(f"<li><a href=\"ganshou-{uid}.html\">{title}</a></li>" for uid, (title, _) in DASHBOARDS.items())
    return ("{{ template \"ganshou_head\" . }}\n<h1>Ganshou 感受 — live figures</h1>\n"
            f"<ul>\n{boards}\n</ul>\n"
            "<p>Each page shows the whole town, or one community when you pick it:</p>\n"
            "{{ template \"ganshou_communities\" \"ganshou-town-overview.html\" }}\n{{ template \"ganshou_tail\" . }}\n")


def library() -> str:
    nav = " · ".join(f"<a href=\"ganshou-{uid}.html?community={{{{ .Params.community }}}}\">{title.split('—')[-1].strip()}</a>"
                     for uid, (title, _) in DASHBOARDS.items())
    static = "{{ pathPrefix }}/classic/static"
    return f"""{{{{/* Generated by tools/consoles.py: the pages' shared head, navigation and tail. */}}}}
{{{{ define "ganshou_head" }}}}<!doctype html>
<html lang="zh-Hans">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>Ganshou 感受 — live figures</title>
<link type="text/css" rel="stylesheet" href="{static}/rickshaw/rickshaw.min.css">
<link type="text/css" rel="stylesheet" href="{static}/bootstrap4/css/bootstrap.min.css">
<link type="text/css" rel="stylesheet" href="{static}/css/prom_console.css">
<script src="{static}/d3/d3.min.js"></script>
<script src="{static}/vendor/rickshaw/vendor/d3.layout.min.js"></script>
<script src="{static}/rickshaw/rickshaw.min.js"></script>
<script src="{static}/jquery/jquery.min.js"></script>
<script src="{static}/popper.js"></script>
<script src="{static}/bootstrap4/js/bootstrap.min.js"></script>
<script>var PATH_PREFIX = "{{{{ pathPrefix }}}}";</script>
<script src="{static}/js/prom_console.js"></script>
<style>.ganshou-stats th {{ font-weight: normal; width: 60%; }} .ganshou-bars {{ width: auto; min-width: 30%; }}</style>
</head>
<body><div class="container-fluid">
<p><a href="index.html">Ganshou</a> · {nav}</p>
{{{{ end }}}}

{{{{ define "ganshou_scope" }}}}<p>{{{{ if .Params.community }}}}Community <b>{{{{ .Params.community }}}}</b> · <a href="?community=">the whole town</a>{{{{ else }}}}The whole town{{{{ end }}}}
· as of {{{{ with query "time()" }}}}{{{{ . | first | value | humanizeTimestamp }}}}{{{{ end }}}}, refreshed every {REFRESH_S} s</p>
{{{{ end }}}}

{{{{ define "ganshou_communities" }}}}<p>{{{{ $page := . }}}}{{{{ range query `ganshou_households{{community!=""}}` | sortByLabel "community" }}}}<a href="{{{{ $page }}}}?community={{{{ .Labels.community }}}}">{{{{ .Labels.community }}}}</a> {{{{ else }}}}(no community yet){{{{ end }}}}</p>
{{{{ end }}}}

{{{{ define "ganshou_number" }}}}{{{{ if eq (printf "%.0f" .) (printf "%g" .) }}}}{{{{ printf "%.0f" . }}}}{{{{ else }}}}{{{{ printf "%.2f" . }}}}{{{{ end }}}}{{{{ end }}}}

{{{{ define "ganshou_tail" }}}}</div></body>
</html>
{{{{ end }}}}
"""


def render() -> dict[Path, str]:
    out = {CONSOLES / f"ganshou-{uid}.html": page(title, panels) for uid, (title, panels) in DASHBOARDS.items()}
    out[CONSOLES / "index.html"] = index()
    out[LIBRARIES / "ganshou.lib"] = library()
    return out


if __name__ == "__main__":
    for path, text in render().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(DASHBOARDS)} console pages and their index to {CONSOLES}", file=sys.stderr)
