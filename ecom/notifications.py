"""Messages that reach a person: one webhook post per failure and day (Slack-compatible).

Failures already land in `ops` tables and on the `data-quality-alerts` topic, which only a
program reads. A `Notice` says what failed, for which day, the details (failing
expectations or dbt tests with their counts, the error) and where to look; `notify` posts
it as `{"text": ..., "blocks": [...]}` to `ECOM_ALERT_WEBHOOK_URL` (a secret; empty = off).

Why the dedupe lives in the warehouse (`ops.notifications`) and not in memory: a failing
task's retries, a rerun of the day and the CLI each run in a new process. A sender claims
the row of the notice's `dedupe_key` (what failed + its day) in one statement, posts, then
records the outcome; anyone else finds the claim and only counts an occurrence. A failed
post (or a claim left by a process that died mid-post) lets the next occurrence retry.
When the warehouse itself is unreachable (maybe the very failure being reported) the
message is sent anyway: a duplicate beats silence.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import psycopg2

from ecom.config import Settings
from ecom.db import connection
from ecom.errors import UserError

log = logging.getLogger(__name__)

Kind = Literal["quality_gate", "task_failed", "deadline_missed"]
Status = Literal["off", "sent", "duplicate", "failed"]

POST_TIMEOUT_S = 10.0
#: a claim older than this is from a process that died while posting: the next one retries
STALE_CLAIM = "10 minutes"
#: Slack's limits: header text 150 characters, a section's text 3,000
_HEADER_CHARS = 150
_SECTION_CHARS = 2900
MAX_DETAIL_LINES = 20


@dataclass(frozen=True)
class Notice:
    """One failure worth a person's attention."""

    kind: Kind
    subject: str  # what failed, e.g. the layer `raw` or the task `extract`
    logical_date: date | None
    title: str  # one line: what failed, for which day
    details: tuple[str, ...] = ()  # failing expectations / dbt tests with counts, the error
    links: tuple[tuple[str, str], ...] = ()  # (label, URL or where in the warehouse)

    @property
    def dedupe_key(self) -> str:
        """Same thing failing on the same day = same key (sent once)."""
        day = self.logical_date.isoformat() if self.logical_date else "-"
        return f"{self.kind}|{self.subject}|{day}"


@dataclass(frozen=True)
class Delivery:
    status: Status
    detail: str = ""

    def describe(self) -> str:
        """For a log or CLI line."""
        text = {
            "off": "no webhook configured (ECOM_ALERT_WEBHOOK_URL)",
            "sent": "webhook message sent",
            "duplicate": "webhook message already sent for this failure and day",
            "failed": "webhook message NOT delivered",
        }[self.status]
        return f"{text} ({self.detail})" if self.detail else text


def _escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(label: str, target: str) -> str:
    if target.startswith(("http://", "https://")):
        return f"<{_escape(target)}|{_escape(label)}>"
    return f"{_escape(label)}: `{_escape(target)}`"


def slack_message(notice: Notice) -> dict[str, Any]:
    """The webhook body: `text` (the notification's fallback) and Block Kit `blocks`."""
    details = list(notice.details[:MAX_DETAIL_LINES])
    if len(notice.details) > MAX_DETAIL_LINES:
        details.append(f"... and {len(notice.details) - MAX_DETAIL_LINES} more")
    body = "\n".join(f"• {_escape(line)}" for line in details)
    if len(body) > _SECTION_CHARS:
        body = body[:_SECTION_CHARS] + " ..."
    header = notice.title if len(notice.title) <= _HEADER_CHARS else \
        notice.title[:_HEADER_CHARS - 3] + "..."
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
    ]
    if body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body}})
    if notice.links:
        where = " · ".join(_link(label, target) for label, target in notice.links)
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"Where to look: {where}"}]})
    text_lines = [notice.title, *details]
    text_lines += [f"{label}: {target}" for label, target in notice.links]
    return {"text": "\n".join(text_lines), "blocks": blocks}


def post_json(url: str, payload: dict[str, Any], timeout_s: float = POST_TIMEOUT_S) -> None:
    """POST JSON; UserError (without the URL: it is a secret) unless the server says 2xx."""
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"} or \
            not urllib.parse.urlsplit(url).netloc:
        raise UserError("ECOM_ALERT_WEBHOOK_URL is not an http(s) URL")
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise UserError(f"the webhook answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"the webhook could not be reached ({reason})") from None


#: the row may be claimed again: its post failed, or its sender died mid-post
_RETRY = ("(n.status = 'failed' or (n.status = 'sending' "
          f"and n.claimed_at < now() - interval '{STALE_CLAIM}'))")
_CLAIM_SQL = f"""
insert into ops.notifications as n
    (dedupe_key, kind, logical_date, title, status, claim_token)
values (%(key)s, %(kind)s, %(day)s, %(title)s, 'sending', %(token)s)
on conflict (dedupe_key) do update set
    occurrences = n.occurrences + 1,
    last_seen_at = now(),
    attempts = n.attempts + ({_RETRY})::int,
    status = case when {_RETRY} then 'sending' else n.status end,
    claim_token = case when {_RETRY} then excluded.claim_token else n.claim_token end,
    claimed_at = case when {_RETRY} then now() else n.claimed_at end
returning n.claim_token = %(token)s
"""

_OUTCOME_SQL = """
update ops.notifications
   set status = %s, sent_at = case when %s = 'sent' then now() end, error_text = %s
 where dedupe_key = %s and claim_token = %s
"""


def _claim(settings: Settings, notice: Notice, token: str) -> bool:
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute(_CLAIM_SQL, {"key": notice.dedupe_key, "kind": notice.kind,
                                 "day": notice.logical_date, "title": notice.title[:500],
                                 "token": token})
        return bool(cur.fetchone()[0])


def _record(settings: Settings, notice: Notice, token: str, status: str,
            error: str | None) -> None:
    with connection(settings, "loader") as conn, conn.cursor() as cur:
        cur.execute(_OUTCOME_SQL, (status, status, error, notice.dedupe_key, token))


def notify(settings: Settings, notice: Notice, *,
           post: Callable[[str, dict[str, Any]], None] = post_json) -> Delivery:
    """Post the notice to the webhook once per `dedupe_key`. Never raises: the outcome is
    returned (and logged), and a failed post is recorded for the next occurrence to retry."""
    url = settings.alert_webhook_url.get_secret_value()
    if not url:
        return Delivery("off")
    token = uuid.uuid4().hex
    recorded = True
    try:
        if not _claim(settings, notice, token):
            log.info("webhook: %s already notified", notice.dedupe_key)
            return Delivery("duplicate")
    except (UserError, psycopg2.Error) as exc:  # warehouse down: tell the person anyway
        log.warning("webhook: cannot record %s in ops.notifications (%s); sending without "
                    "dedupe", notice.dedupe_key, exc)
        recorded = False
    try:
        post(url, slack_message(notice))
    except UserError as exc:
        log.error("webhook: %s not delivered: %s", notice.dedupe_key, exc)
        outcome = Delivery("failed", str(exc))
    else:
        outcome = Delivery("sent", "" if recorded else "not recorded: warehouse unreachable")
    if recorded:
        try:
            failed = outcome.status == "failed"
            _record(settings, notice, token, "failed" if failed else "sent",
                    outcome.detail if failed else None)
        except (UserError, psycopg2.Error) as exc:
            log.warning("webhook: outcome of %s not recorded (%s)", notice.dedupe_key, exc)
    return outcome
