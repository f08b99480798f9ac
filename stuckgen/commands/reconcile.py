"""The bodies of `reconcile` (ask the provider how each stuck provider row ended; ``--apply`` settles them
through the app) and of `retrigger --via sync` (the app's recovery route, with retrigger's safety)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stuckgen.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from collections.abc import Sequence

    from stuckgen.console import Output
    from stuckgen.reconcile import ProviderRow, ReconcileResult, Verdict
    from stuckgen.remediate.runner import Pick
    from stuckgen.replicate import ProviderOptions
    from stuckgen.scan import ScanOptions
    from stuckgen.session import Session
    from stuckgen.settle import SettleOptions, SettleResult

FORMATS = ("table", "json", "csv", "markdown")


def run_reconcile(session: Session, out: Output, *, pick: Pick, concurrency: int = 4,
                  tries: int = 3, apply: bool = False, via: str = "sync", webhook_signature: str = "standard",
                  yes: bool = False, fmt: str = "table") -> int:
    """`stuckgen reconcile`: one verdict per stuck provider row; with ``apply``, settle the finished ones."""
    from stuckgen import reconcile as core
    provider = session.provider_options(concurrency=concurrency, tries=tries)
    opts = session.remediation_scan_options(classes=tuple(pick.classes), older_than=pick.older_than)
    settling = settle_options(session, scan=opts, via=via, signature=webhook_signature, concurrency=concurrency,
                              tries=tries) if apply else None
    conn, mapping = session.connection(), session.mapping()
    with session.read():
        rows, without, rejected = core.provider_rows(conn, mapping, opts, ids=tuple(pick.ids), rules=session.rules())
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    for r in rejected:
        out.note(f"{r.id}: {r.reason}")
    client = session.http_client(concurrency=concurrency)
    result = core.reconcile_rows(client, rows, options=provider, now=now, stuck_rows=len(rows) + without,
                                 without_prediction=without)
    if settling is None:
        render(out, fmt, result)
        return ExitCode.INTERRUPTED if result.interrupted else int(result.exit_code)
    return _apply(session, out, fmt, rows, result, settling, provider_http=client, provider=provider, yes=yes)


def run_sync(session: Session, out: Output, pick: Pick, *, via: str, concurrency: int, tries: int, yes: bool,
             fmt: str) -> int:
    """`retrigger --via sync`: the app's recovery route for the picked provider rows, with retrigger's safety."""
    from stuckgen import reconcile as core
    from stuckgen import settle
    from stuckgen.remediate import runner

    if via != "sync":
        raise ConfigError(f"--via: {via!r} is not one of process, sync",
                          hint="to replay the provider's webhook, use `stuckgen reconcile --apply --via webhook`")
    # scan=None for now: the options are checked (URL, owner session) before anything is read.
    settle_options(session, scan=None, via="sync", concurrency=concurrency, tries=tries)
    selection, opts = runner.select(session, pick)
    options = settle_options(session, scan=opts, via="sync", concurrency=concurrency, tries=tries)
    with session.read():
        rows, without = core.prediction_ids(session.connection(), session.mapping(), selection.targets)
    for r in selection.rejected:
        out.note(f"{r.id}: {r.reason}")
    if without:
        out.note(f"{len(without)} selected row(s) carry no provider prediction id: the sync route would answer "
                 f"400; not sent ({', '.join(without[:3])}{' ...' if len(without) > 3 else ''})")
    result = _settle(session, out, rows, settle.unasked(rows), options, yes=yes,
                     question=f"Sync {len(rows)} row(s) through {options.url}?")
    return render_settle(out, fmt, result)


def _apply(session: Session, out: Output, fmt: str, rows: Sequence[ProviderRow], result: ReconcileResult,
           options: SettleOptions, *, provider_http: Any, provider: ProviderOptions, yes: bool) -> int:
    """``reconcile --apply``: settle through the app the rows the provider finished."""
    from stuckgen import settle
    from stuckgen.render.reconcile import summary_lines

    for line in summary_lines(result):
        out.note(line)
    if result.nothing_answered:
        return ExitCode.UNREACHABLE
    take, _ = settle.settleable(result.verdicts)
    outcome = _settle(session, out, rows if take else [], result.verdicts, options, yes=yes,
                      question=f"Settle {len(take)} row(s) through the app at {options.url}?",
                      provider_client=provider_http, provider=provider)
    return render_settle(out, fmt, outcome)


def _settle(session: Session, out: Output, rows: Sequence[ProviderRow], verdicts: Sequence[Verdict],
            options: SettleOptions, *, yes: bool, question: str, **provider: Any) -> SettleResult:
    """Settle ``rows`` when there are any and the operator agrees (audited); otherwise the plan."""
    from stuckgen import settle
    from stuckgen.audit import new_run_id

    audit, op = session.audit(), session.operator()
    if not (rows and out.confirmer(yes)(question)):
        return settle.plan(verdicts, options=options, audit=audit.where, operator=op)
    session.prepare_audit(audit)
    client = session.http_client(concurrency=options.concurrency)
    return settle.settle_rows(client, session.connection(), session.mapping(), rows, verdicts, options=options,
                              audit=audit, run_id=new_run_id(), operator=op, **provider)


def settle_options(session: Session, *, scan: ScanOptions | None, via: str, signature: str = "standard",
                   concurrency: int = 4, tries: int = 3) -> SettleOptions:
    """SettleOptions from the settings: the deployment URL, and the credentials the route takes."""
    from stuckgen import settle

    s = session.settings
    if not s.base_url:
        raise ConfigError("--apply settles rows through the app: pass --url or set STUCKGEN_BASE_URL")
    if len(s.base_url) > 1:
        raise ConfigError(f"--apply sends to one deployment; got {len(s.base_url)} URLs ({', '.join(s.base_url)})")
    options = settle.SettleOptions(
        url=s.base_url[0], scan=scan, via=via,  # type: ignore[arg-type]  # None only to check before reading
        access_token=_access_token(session) if via == "sync" else None,
        webhook_secret=s.replicate_webhook_secret, signature=signature, bypass_secret=s.bypass_secret,
        concurrency=concurrency, tries=tries, allow_insecure=session.allow_insecure,
        statement_timeout=s.statement_timeout, lock_timeout=s.lock_timeout)
    settle.check_options(options)
    return options


def _access_token(session: Session) -> str | None:
    """The Supabase access token inside the configured session cookie (the sync route's Bearer)."""
    from stuckgen.cookies import session_token, split_header

    info = session.cookie()
    if info is None:
        return None
    if info.expired:
        raise ConfigError("the session cookie has expired: the sync route would answer 401",
                          hint="sign in again and export a fresh cookie")
    cookie_name = session.settings.cookie_name
    _, token, _ = session_token(split_header(info.header), cookie_name=cookie_name) if info.header else (None, None, [])
    if not token:
        raise ConfigError("the session cookie holds no Supabase access token (sb-<ref>-auth-token)")
    return token


def render(out: Output, fmt: str, result: ReconcileResult) -> None:
    from stuckgen.render.reconcile import (
        reconcile_csv_lines, reconcile_json_lines, reconcile_markdown_lines, reconcile_table, summary_lines,
    )

    if fmt == "markdown":
        out.lines(reconcile_markdown_lines(result))
    elif fmt in ("json", "csv"):
        out.lines(reconcile_json_lines(result) if fmt == "json" else reconcile_csv_lines(result))
        for line in summary_lines(result):
            out.note(line)
    else:
        if result.verdicts:
            table, hidden = reconcile_table(result, max_rows=50 if out.is_tty else None)
            out.out.print(table)
            if hidden:
                out.out.print(f"... and {hidden} more (see --format json)", markup=False)
            out.out.print()
        for line in summary_lines(result):
            out.out.print(line, markup=False, highlight=False, soft_wrap=True)


def render_settle(out: Output, fmt: str, result: SettleResult) -> int:
    """The settle run (one JSON document whatever format reconcile was asked for), and its exit code."""
    import json

    from stuckgen.settle import summary_lines

    if fmt in ("json", "csv", "markdown"):
        out.lines([json.dumps(result.as_dict(), indent=2)])
        for line in summary_lines(result):
            out.note(line)
    else:
        from stuckgen.render.reconcile import settle_table

        if result.outcomes:
            out.out.print(settle_table(result))
            out.out.print()
        for line in summary_lines(result):
            out.out.print(line, markup=False, highlight=False, soft_wrap=True)
    return ExitCode.INTERRUPTED if result.interrupted else int(result.exit_code)
