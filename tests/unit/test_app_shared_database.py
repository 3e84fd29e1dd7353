"""An App that borrows another App's database (a command ie-filterd runs) leaves the
owner's connection pool alone when it closes."""

from __future__ import annotations

from sqlalchemy import text


def test_closing_the_borrower_keeps_the_owners_pool(make_app, db_url) -> None:
    owner, borrower = make_app(db_url=db_url), make_app(db_url=db_url)
    with owner.db.reading() as s:
        s.execute(text("SELECT 1"))
    pool = owner.db.engine.pool
    assert pool.checkedin() == 1
    borrower.share_database(owner.db)
    with borrower.db.reading() as s:
        s.execute(text("SELECT 1"))
    borrower.close()
    assert owner.db.engine.pool is pool and pool.checkedin() == 1  # not disposed
    owner.close()
    assert owner.db.engine.pool.checkedin() == 0
