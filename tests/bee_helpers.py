"""Replaying the operation scripts and queries of ``interop/vectors/bee.js`` in Python."""

from __future__ import annotations

from typing import Any

from hyperlobby.bee import BeeEntry, Hyperbee, Metadata


def to_app(text: bool, s: Any) -> Any:
    if s is None:
        return None
    return s if text else bytes.fromhex(s)


def raw_hex(v: Any) -> str | None:
    if v is None:
        return None
    return v.encode().hex() if isinstance(v, str) else bytes(v).hex()


def entry(e: BeeEntry | None) -> list[Any] | None:
    return None if e is None else [e.seq, raw_hex(e.key), raw_hex(e.value)]


def view_of(db: Hyperbee, sub: list[str] | None) -> Hyperbee:
    for name in sub or []:
        db = db.sub(name)
    return db


def range_opts(text: bool, q: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: to_app(text, q[k]) for k in ("gt", "gte", "lt", "lte") if k in q}
    if q.get("reverse"):
        out["reverse"] = True
    return out


def answer(db: Hyperbee, text: bool, q: dict[str, Any]) -> Any:
    view = view_of(db.checkout(q["version"]), q.get("sub"))
    kind = q["kind"]
    if kind == "get":
        return entry(view.get(to_app(text, q["key"])))
    if kind == "range":
        return [e.seq for e in view.range(**range_opts(text, q), limit=q.get("limit", -1))]
    if kind == "peek":
        return entry(view.peek(**range_opts(text, q)))
    if kind == "diff":
        other = view_of(db.checkout(q["other"]), q.get("sub"))
        opts = range_opts(text, q)
        opts.pop("reverse", None)
        return [
            [None if a is None else a.seq, None if b is None else b.seq]
            for a, b in view.diff(other, **opts, limit=q.get("limit", -1))
        ]
    if kind == "history":
        hopts = {k: q[k] for k in ("gt", "gte", "lt", "lte", "limit") if k in q}
        return [[h.type, h.seq] for h in view.history(**hopts, reverse=bool(q.get("reverse")))]
    raise AssertionError(f"unknown query {kind}")


def bee_options(sc: dict[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = {"key_encoding": sc["keyEncoding"], "value_encoding": sc["valueEncoding"]}
    if sc.get("alwaysDuplicate") is False:
        opts["always_duplicate"] = False
    md = sc.get("metadata")
    if md is not None:
        cf = md.get("contentFeed")
        ud = md.get("userData")
        opts["metadata"] = Metadata(
            bytes.fromhex(cf) if cf is not None else None, bytes.fromhex(ud) if ud is not None else None
        )
    return opts


def apply_op(db: Hyperbee, text: bool, op: dict[str, Any]) -> None:
    if op["op"] == "batch":
        with db.batch() as b:
            for o in op["ops"]:
                if o["op"] == "put":
                    b.put(to_app(text, o["key"]), to_app(text, o["value"]))
                else:
                    b.delete(to_app(text, o["key"]))
        return
    view = view_of(db, op.get("sub"))
    if op["op"] == "put":
        view.put(to_app(text, op["key"]), to_app(text, op["value"]))
    else:
        view.delete(to_app(text, op["key"]))
