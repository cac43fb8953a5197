"""Migration: the vec0 vector tables store int8 instead of float32.

`segment_vec` (512-d) and `keyframe_vec` (1280-d) are rebuilt as `int8[N]` columns with
the same keys, metadata columns and cosine metric (format: indexer.store.vec_codec). At a
million transcript windows the float table alone was 2.1 KB per moment, over the 2 KB
budget for vectors and codes together; int8 brings the vectors, the binary codes and the
re-rank copy to about 1.3 KB (benchmarks/README.md, Search).

vec0 tables cannot be renamed, so each is copied out to a temporary table in batches,
dropped, created again and filled back, inside the migration's transaction.
"""
from __future__ import annotations

import numpy as np

from indexer.store.schema import KEYFRAME_DIM, SEGMENT_DIM
from indexer.store.vec_codec import unit_int8

_BATCH = 5000

# (table, key, dim, metadata columns)
TABLES = (
    ("segment_vec", "segment_id", SEGMENT_DIM, ("media_id INTEGER", "kind TEXT", "language TEXT")),
    ("keyframe_vec", "keyframe_id", KEYFRAME_DIM, ("media_id INTEGER", "kind TEXT")),
)


def create_sql(table: str, key: str, dim: int, meta: tuple[str, ...]) -> str:
    cols = ",\n    ".join((f"{key} INTEGER PRIMARY KEY",
                           f"embedding int8[{dim}] distance_metric=cosine", *meta))
    return f"CREATE VIRTUAL TABLE {table} USING vec0(\n    {cols}\n)"


def _is_float(conn, table: str) -> bool:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    return sql is not None and "float[" in sql[0]


def to_int8_tables(conn) -> None:
    for table, key, dim, meta in TABLES:
        if not _is_float(conn, table):
            continue
        names = [m.split()[0] for m in meta]
        cols = ", ".join(names)
        conn.execute(f"CREATE TEMP TABLE _vec_copy (id INTEGER PRIMARY KEY, v BLOB, "
                     f"{', '.join(meta)})")
        cur = conn.execute(f"SELECT {key}, embedding, {cols} FROM {table}")
        marks = ", ".join("?" * (len(names) + 2))
        while rows := cur.fetchmany(_BATCH):
            vecs = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), dim)
            q = unit_int8(vecs)
            conn.executemany(f"INSERT INTO _vec_copy VALUES ({marks})",
                             [(r[0], q[i].tobytes(), *r[2:]) for i, r in enumerate(rows)])
        conn.execute(f"DROP TABLE {table}")
        conn.execute(create_sql(table, key, dim, meta))
        conn.execute(f"INSERT INTO {table}({key}, embedding, {cols}) "
                     f"SELECT id, vec_int8(v), {cols} FROM _vec_copy ORDER BY id")
        conn.execute("DROP TABLE _vec_copy")


MIGRATIONS = [("0007_int8_vectors", to_int8_tables)]
