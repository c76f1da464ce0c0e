"""An import, adds and many status changes at once: no lost update, no duplicate row."""

from __future__ import annotations

import threading
from collections import defaultdict

import sqlalchemy as sa

from mailer.models import Status
from mailer.store import open_store
from mailer.store.importer import import_file
from mailer.store.schema import history, list_members, subscribers

EXISTING = [f"old{i}@example.com" for i in range(200)]
NEW = [f"new{i}@example.com" for i in range(200)]
CHANGES = [Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED]


def run_threads(targets) -> None:
    errors: list[BaseException] = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # surfaced below, with the thread's exception
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors


def test_import_adds_and_status_changes_concurrently(db_settings, tmp_path):
    with open_store(db_settings, upgrade=True) as store:
        ids = [store.add(email).id for email in EXISTING]
    src = tmp_path / "all.csv"
    # The import also unsubscribes the existing addresses: it races the changers for the same rows.
    src.write_text("email,status\n" + "".join(f"{e.upper()},unsubscribed\n" for e in EXISTING)
                   + "".join(f"{e.upper()},subscribed\n" for e in NEW))
    store = open_store(db_settings)
    try:
        def importer():
            import_file(store, src, batch_size=25)

        def changer(part):
            def run():
                for status in CHANGES:
                    for sid in ids[part::4]:  # unsubscribed may already be done by the import
                        changed = store.set_status(sid, status, reason="ses-bounce")
                        assert changed or status is Status.UNSUBSCRIBED
            return run

        def adder(reverse):
            def run():
                for email in (reversed(NEW) if reverse else NEW):
                    store.add(email, list_name="preview")
            return run

        run_threads([importer, *(changer(p) for p in range(4)), adder(False), adder(True)])
        check(store)
    finally:
        store.close()


def check(store) -> None:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(subscribers.c.id, subscribers.c.email_norm, subscribers.c.status)).all()
        entries = conn.execute(sa.select(history).order_by(history.c.id)).all()
        members = conn.execute(sa.select(list_members.c.subscriber_id, list_members.c.list_id)).all()
    norms = [r.email_norm for r in rows]
    assert len(norms) == len(set(norms)) == len(EXISTING) + len(NEW)  # no duplicate row
    status = {r.id: r.status for r in rows}
    by_norm = {r.email_norm: r.status for r in rows}
    assert all(by_norm[e] == Status.COMPLAINED.value for e in EXISTING)  # import never reverted a change
    assert all(by_norm[e] == Status.SUBSCRIBED.value for e in NEW)
    chains = defaultdict(list)
    for h in entries:
        chains[h.subscriber_id].append(h)
    for sid, chain in chains.items():  # every change saw the previous one: no lost update
        assert chain[0].old_status is None
        assert all(a.new_status == b.old_status for a, b in zip(chain, chain[1:])), chain
        assert chain[-1].new_status == status[sid]
    assert len(entries) == len(EXISTING) * (1 + len(CHANGES)) + len(NEW)
    assert len(members) == len(set(members))
    per_sub = defaultdict(int)
    for sid, _ in members:
        per_sub[sid] += 1
    new_ids = [r.id for r in rows if r.email_norm in set(NEW)]
    assert all(per_sub[sid] == 2 for sid in new_ids)  # main (import) and preview (add)
