"""Row decoders of every record kind, made by ``rows.decoders_module()`` from ``schema.FIELDS``:
do not edit (tests/test_row_decoders.py checks that this file is what FIELDS make). Python's
bytecode cache loads them, where compiling them cost ~0.5 ms a kind on each process's first read."""

from __future__ import annotations

from typing import Any


def timeline(loads: Any, to_time: Any, make: Any, lazy: Any, slots: Any = None) -> Any:
    if slots is not None:
        new = object.__new__
        s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = slots
    def decode(row: Any, fetch: Any, exact: Any) -> Any:
        v0 = row[0]
        v1 = row[1]
        v2 = row[2]
        v3 = row[3]
        v4 = row[4]
        v5 = row[5]
        v6 = row[6]
        v7 = row[7]
        if v7 is not None:
            v7 = to_time(v7)
        v8 = row[8]
        if v8 is not None and (exact is None or 'source_info' not in exact):
            v8 = loads(v8)
            if type(v8) is not dict:
                raise ValueError('source_info is not a JSON object')
        v9 = row[9]
        if exact is not None:
            v0 = exact.get('id', v0)
            v1 = exact.get('source_video', v1)
            v2 = exact.get('profile_name', v2)
            v3 = exact.get('fps', v3)
            v4 = exact.get('source_asset_id', v4)
            v5 = exact.get('root_checkpoint_id', v5)
            v6 = exact.get('frame_count', v6)
            v7 = exact.get('created_at', v7)
            v8 = exact.get('source_info', v8)
            v9 = exact.get('index_hash', v9)
        if slots is not None:
            r = new(make)
            s0(r, v0)
            s1(r, v1)
            s2(r, v2)
            s3(r, v3)
            s4(r, v4)
            s5(r, v5)
            s6(r, v6)
            s7(r, v7)
            s8(r, v8)
            s9(r, v9)
            return r
        return make(v0, v1, v2, v3, v4, v5, v6, v7, v8, v9)

    return decode


def checkpoint(loads: Any, to_time: Any, make: Any, lazy: Any, slots: Any = None) -> Any:
    if slots is not None:
        new = object.__new__
        s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11 = slots
    def decode(row: Any, fetch: Any, exact: Any) -> Any:
        v0 = row[0]
        v1 = row[1]
        v2 = row[2]
        v3 = row[3]
        v4 = row[4]
        if v4 is not None and (exact is None or 'stage_hashes' not in exact):
            v4 = loads(v4)
            if type(v4) is not dict:
                raise ValueError('stage_hashes is not a JSON object')
        v5 = row[5]
        if v5 is not None and (exact is None or 'config_overrides' not in exact):
            v5 = loads(v5)
            if type(v5) is not dict:
                raise ValueError('config_overrides is not a JSON object')
        v6 = row[6]
        if v6 is not None and (exact is None or 'stats' not in exact):
            v6 = loads(v6)
            if type(v6) is not dict:
                raise ValueError('stats is not a JSON object')
        v7 = row[7]
        if v7 is not None:
            v7 = bool(v7)
        v8 = row[8]
        v9 = row[9]
        if v9 is not None:
            v9 = to_time(v9)
        v10 = row[10]
        if exact is not None:
            v0 = exact.get('id', v0)
            v1 = exact.get('timeline_id', v1)
            v2 = exact.get('parent_id', v2)
            v3 = exact.get('stage', v3)
            v4 = exact.get('stage_hashes', v4)
            v5 = exact.get('config_overrides', v5)
            v6 = exact.get('stats', v6)
            v7 = exact.get('is_scenario', v7)
            v8 = exact.get('scenario_label', v8)
            v9 = exact.get('created_at', v9)
            v10 = exact.get('merged_from', v10)
        if fetch is not None:
            if slots is not None:
                r = new(make)
                s0(r, v0)
                s1(r, v1)
                s2(r, v2)
                s3(r, v4)
                s4(r, v5)
                s5(r, v6)
                s6(r, v7)
                s7(r, v8)
                s8(r, v9)
                s9(r, v10)
                s10(r, v3)
                s11(r, lazy(v4, fetch))
                return r
            return make(v0, v1, v2, v4, v5, v6, v7, v8, v9, v10, v3, lazy(v4, fetch))
        return make(v0, v1, v2, v4, v5, v6, v7, v8, v9, v10, v3)

    return decode


def tombstone(loads: Any, to_time: Any, make: Any, lazy: Any, slots: Any = None) -> Any:
    if slots is not None:
        new = object.__new__
        s0, s1, s2, s3, s4 = slots
    def decode(row: Any, fetch: Any, exact: Any) -> Any:
        v0 = row[0]
        v1 = row[1]
        v2 = row[2]
        v3 = row[3]
        v4 = row[4]
        if v4 is not None:
            v4 = to_time(v4)
        if exact is not None:
            v0 = exact.get('id', v0)
            v1 = exact.get('target_id', v1)
            v2 = exact.get('kind', v2)
            v3 = exact.get('timeline_id', v3)
            v4 = exact.get('created_at', v4)
        if slots is not None:
            r = new(make)
            s0(r, v0)
            s1(r, v1)
            s2(r, v2)
            s3(r, v3)
            s4(r, v4)
            return r
        return make(v0, v1, v2, v3, v4)

    return decode


def tag(loads: Any, to_time: Any, make: Any, lazy: Any, slots: Any = None) -> Any:
    if slots is not None:
        new = object.__new__
        s0, s1, s2, s3, s4 = slots
    def decode(row: Any, fetch: Any, exact: Any) -> Any:
        v0 = row[0]
        v1 = row[1]
        v2 = row[2]
        v3 = row[3]
        v4 = row[4]
        if v4 is not None:
            v4 = to_time(v4)
        if exact is not None:
            v0 = exact.get('id', v0)
            v1 = exact.get('name', v1)
            v2 = exact.get('checkpoint_id', v2)
            v3 = exact.get('timeline_id', v3)
            v4 = exact.get('created_at', v4)
        if slots is not None:
            r = new(make)
            s0(r, v0)
            s1(r, v1)
            s2(r, v2)
            s3(r, v3)
            s4(r, v4)
            return r
        return make(v0, v1, v2, v3, v4)

    return decode


DIGESTS = {
    'timeline': 'c625079d199d9a3270d3edf2cd7d00e0',
    'checkpoint': '51c2fd5751744326c75a6194b05b8cb7',
    'tombstone': '941f199a6066791f8bc448bebfbf408c',
    'tag': '23bc7eb052e074eae29b7189fd87bd61',
}
