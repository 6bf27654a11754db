"""Stage ``license``: keep permissively licensed, attributed samples (rules in ``gpic_lab.core.licenses``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpic_lab.core.licenses import check_record, normalize


def license_stage(samples: list[Any], params: Mapping[str, Any] | None = None) -> list[Any]:
    """Stage `license`: keep samples with a permissive license, a non-empty attribution and a matching URL.

    Reasons: license-not-permissive, license-unknown, license-url-mismatch, attribution-missing,
    license-url-missing. params: require_attribution (default True), check_url (default True).
    OUR ASSUMPTION: GPIC keeps license name, URL and attribution per record but does not say it dropped records
    with an empty attribution or a license URL that disagrees with the license; we drop them by default (CC BY
    requires attribution; a mismatched URL makes the license claim doubtful), each switchable by a parameter.
    Extras: license_spdx. No scores.
    """
    from gpic_lab.engine.records import Decision

    params = params or {}
    need_attr, check_url = bool(params.get("require_attribution", True)), bool(params.get("check_url", True))
    out = []
    for s in samples:
        meta = s.meta
        lic = normalize(meta.get("license"), meta.get("license_url") if check_url else None)
        reason = lic.reason
        if reason is None:
            codes = [c for c, _m in check_record(meta)
                     if (need_attr or c != "attribution-missing") and (check_url or not c.startswith("license-url"))]
            reason = codes[0] if codes else None
        out.append(Decision(s.key, reason is None, reason, extra={"license_spdx": lic.spdx}))
    return out
