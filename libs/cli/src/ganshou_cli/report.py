"""The leaders' report: a PDF (and HTML) briefing for the town committee in Simplified
Chinese — the headline figures of the source article, visit coverage and resolution by
community, promises kept and broken, satisfaction by segment, partners and aid by kind,
and the open overdue cases. Charts by matplotlib in Noto Sans CJK (Debian's fonts-noto-cjk).

The figures are the live ones as of the report's date: the projection keeps totals, so
the period is the report's label, not a filter.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass, field
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from ganshou.casework.v1 import casework_service_pb2 as capi  # noqa: E402
from ganshou.common.v1 import types_pb2 as t  # noqa: E402
from ganshou.metrics.v1 import metrics_service_pb2 as mapi  # noqa: E402
from ganshou_cli.clients import every_page  # noqa: E402

FONT = "Noto Sans CJK SC"
SEGMENT_ZH = {t.SEGMENT_LOCAL: "本地居民", t.SEGMENT_MIGRANT: "来沪人员", t.SEGMENT_WHITE_COLLAR: "普通白领",
              t.SEGMENT_HIGH_END_TALENT: "高端人才", t.SEGMENT_FOREIGN_NATIONAL: "外籍人士"}
AID_ZH = {"AID_KIND_HARDSHIP": "助困", "AID_KIND_DISABILITY": "助残", "AID_KIND_ELDERLY": "助老",
          "AID_KIND_MEDICAL": "助医", "AID_KIND_EDUCATION": "助学"}


def zh_number(n: float) -> str:
    """Numbers as Chinese reports write them: 万 and 亿 for large values."""
    if abs(n) >= 1e8:
        return f"{n / 1e8:.2f}亿"
    if abs(n) >= 1e4:
        return f"{n / 1e4:.2f}万"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:.2f}"


def zh_percent(r: float) -> str:
    return f"{r * 100:.1f}%"


def zh_yuan(fen: int) -> str:
    return f"{zh_number(fen / 100)}元"


@dataclass
class ReportData:
    period: str
    as_of: datetime
    town: mapi.Figures
    communities: dict[str, mapi.Figures]
    segments: dict[int, mapi.Figures]
    overdue: list[capi.Case] = field(default_factory=list)


async def gather(clients, period: str) -> ReportData:
    md = clients.metadata
    town = await clients.metrics.GetFigures(mapi.GetFiguresRequest(), metadata=md)
    communities = {c: (await clients.metrics.GetFigures(mapi.GetFiguresRequest(community_id=c), metadata=md)).figures
                   for c in town.communities}
    segments = {s: (await clients.metrics.GetFigures(mapi.GetFiguresRequest(segment=s), metadata=md)).figures
                for s in SEGMENT_ZH}
    overdue = []
    for c in town.communities:  # every page: a community's count of overdue cases is charted
        overdue += await every_page(lambda token, c=c: clients.casework.ListCases(capi.ListCasesRequest(
            community_id=c, overdue_only=True, page_size=200, page_token=token), metadata=md), "cases")
    return ReportData(period, town.as_of.ToDatetime(), town.figures, communities, segments, overdue)


def headline(d: ReportData) -> list[tuple[str, str]]:
    f = d.town
    return [
        ("走访覆盖率", f"{zh_percent(f.visit_coverage)}（{zh_number(f.households_visited)}/{zh_number(f.households_due)}户）"),
        ("受理问题", f"{zh_number(f.issues_received)}件"),
        ("响应率", zh_percent(f.response_rate)),
        ("1小时内响应", zh_percent(f.on_time_response_rate)),
        ("15分钟到场", zh_percent(f.on_site_within_15_min_rate)),
        ("解决或解释率", f"{zh_percent(f.resolved_or_explained_rate)}（{zh_number(f.resolved + f.explained)}件）"),
        ("居民满意度", f"{f.satisfaction_mean:.2f}分（满意占{zh_percent(f.satisfied_share)}）"),
        ("结对签约率", f"{zh_percent(f.pairing_signing_rate)}（{f.units_with_pairing}/{f.member_units}家）"),
        ("服务人次", f"{zh_number(f.service_person_times)}人次"),
        ("帮扶资金", f"{zh_yuan(f.aid_paid_fen)}，受助{zh_number(f.aid_person_times)}人次"),
    ]


def _bar(ax, labels, values, title, percent=False):
    # A bar per community (35 in the town): their values written upright, small, with room
    # above the tallest bar, or neighbours' labels run into each other and into the title.
    many = len(values) > 12
    bars = ax.bar(labels, values, color="#c0392b")
    ax.set_title(title, fontsize=13)
    if percent:
        ax.set_ylim(0, 1.16 if many else 1.08)
        ax.set_yticks([i / 5 for i in range(6)])
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    else:
        ax.margins(y=0.16 if many else 0.08)
    for b, v in zip(bars, values):
        ax.annotate(zh_percent(v) if percent else zh_number(v), (b.get_x() + b.get_width() / 2, b.get_height()),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7 if many else 8, rotation=90 if many else 0)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)


def as_of_line(d: ReportData) -> str:
    """When the figures were read, and that they are totals: the period only labels the report."""
    return f"数据截至 {d.as_of:%Y年%m月%d日 %H:%M}（UTC），为系统启用以来的累计数"


def pages(d: ReportData) -> list[plt.Figure]:
    plt.rcParams["font.family"] = FONT
    plt.rcParams["axes.unicode_minus"] = False
    cs = sorted(d.communities)
    out = []
    fig = plt.figure(figsize=(8.27, 11.69))
    fig.suptitle(f"张江镇感受式服务简报（{d.period}）", fontsize=18)
    fig.text(0.08, 0.92, as_of_line(d), fontsize=10)
    for i, (k, v) in enumerate(headline(d)):
        fig.text(0.1, 0.86 - i * 0.035, k, fontsize=12)
        fig.text(0.45, 0.86 - i * 0.035, v, fontsize=12)
    ax = fig.add_axes((0.1, 0.08, 0.85, 0.38))
    _bar(ax, cs, [d.communities[c].visit_coverage for c in cs], "各村居走访覆盖率", percent=True)
    out.append(fig)

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8.27, 11.69))
    fig.suptitle("问题解决与承诺兑现", fontsize=16)
    _bar(a1, cs, [d.communities[c].resolved_or_explained_rate for c in cs], "各村居解决或解释率", percent=True)
    f = d.town
    _bar(a2, ["1小时响应·兑现", "1小时响应·超时", "15分钟到场·兑现", "15分钟到场·超时"],
         [f.response_promises_kept, f.response_promises_late, f.on_site_kept, f.on_site_late], "服务承诺兑现情况")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out.append(fig)

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8.27, 11.69))
    fig.suptitle("居民感受与区域资源", fontsize=16)
    _bar(a1, [SEGMENT_ZH[s] for s in d.segments], [d.segments[s].satisfaction_mean for s in d.segments],
         "各类人群满意度（1—5分）")
    kinds = list(AID_ZH)
    _bar(a2, [AID_ZH[k] for k in kinds], [f.aid_paid_fen_by_kind.get(k, 0) / 100 for k in kinds], "帮扶资金（元）按类别")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out.append(fig)

    fig = plt.figure(figsize=(8.27, 11.69))
    fig.suptitle("受理与逾期未办结事项", fontsize=16)
    ax = fig.add_axes((0.1, 0.62, 0.85, 0.28))
    per = {c: sum(1 for k in d.overdue if k.community_id == c) for c in cs}
    x = range(len(cs))
    ax.bar([i - 0.2 for i in x], [d.communities[c].issues_received for c in cs], width=0.4, color="#c0392b",
           label="受理问题")
    ax.bar([i + 0.2 for i in x], [per[c] for c in cs], width=0.4, color="#7f8c8d", label="逾期未办结")
    ax.set_xticks(list(x), cs, rotation=45, fontsize=8)
    ax.set_title("各村居受理问题与逾期事项（件）", fontsize=13)
    ax.legend()
    lines = [f"{k.community_id}  {k.category}  受理于{k.opened_at.ToDatetime():%m月%d日 %H:%M}" for k in d.overdue[:25]]
    fig.text(0.1, 0.55, "\n".join(lines) or "无逾期事项", fontsize=10, va="top")
    out.append(fig)
    return out


def render(d: ReportData, pdf_path, html_path=None) -> list[str]:
    """Write the PDF (and HTML); returns any missing-glyph warnings (there should be none)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figs = pages(d)
        with PdfPages(pdf_path) as pdf:
            for fig in figs:
                pdf.savefig(fig)
        images = []
        for fig in figs:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=80)
            images.append(base64.b64encode(buf.getvalue()).decode())
            plt.close(fig)
    if html_path:
        rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in headline(d))
        imgs = "".join(f'<img alt="图表" src="data:image/png;base64,{b}">' for b in images)
        html_path.write_text(f"<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>感受式服务简报</title>"
                             f"<h1>张江镇感受式服务简报（{d.period}）</h1><p>{as_of_line(d)}</p>"
                             f"<table>{rows}</table>{imgs}</html>",
                             encoding="utf-8")
    return [str(w.message) for w in caught if "missing from font" in str(w.message) or "Glyph" in str(w.message)]
