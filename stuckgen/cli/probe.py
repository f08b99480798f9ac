"""`stuckgen probe-auth` (body: stuckgen.commands.probe)."""


from typing import Annotated, Optional

import typer

from stuckgen.cli.options import DATABASE, DEPLOYMENT, Output, RepeatOpt, command, formats, pick_format
from stuckgen.session import Session


@command(DEPLOYMENT, DATABASE, name="probe-auth")
def probe_auth(session: Session, out: Output, repeat: RepeatOpt = None,
               concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=100, metavar="N",
                                                        help="Probes in flight at once.")] = 10,
               fmt: Annotated[Optional[str], formats("table", "json", "markdown")] = None) -> int:
    """Find out why the process route says 401: probe it with each kind of credential.

    Sends POST {route} to every --url with: no credentials, a wrong secret, the
    secret, the session cookie, secret and cookie, and each of those again with
    the Deployment Protection bypass header when --bypass-secret is given. Every
    probe carries {"generationId": <random uuid>} that matches no row (checked
    against the database when one is configured), so it cannot process or claim
    real work. Redirects are recorded, never followed. The secret, cookie and
    bypass secret are never printed: they appear as length and sha256 fingerprint.

    \b
    Examples:
      INTERNAL_API_SECRET=... stuckgen probe-auth --url https://app.example.com --repeat 10
      stuckgen probe-auth -u https://app.example.com -u https://app-git-main.vercel.app \\
          --cookie-file cookies.txt --format markdown

    Exit: 0 auth behaves as it should, 1 a warning or worse, 2 configuration error,
    3 no target answered.
    """
    from stuckgen.commands.probe import run_probe_auth

    return run_probe_auth(session, out, fmt=pick_format(fmt, out, ("table", "json", "markdown")), repeat=repeat,
                          concurrency=concurrency)
