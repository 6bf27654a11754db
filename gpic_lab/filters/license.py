"""Stage ``license``: keep permissively licensed, attributed samples (rules in ``gpic_lab.core.licenses``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpic_lab.core.licenses import check_flags, check_record, normalize
from gpic_lab.engine.params import ParamSpec, declare
from gpic_lab.shards.provenance import provenance_reader


@declare(ParamSpec("require_attribution", "bool", True, "drop samples without an attribution "
                                                        "(attribution-missing)"),
         ParamSpec("check_url", "bool", True, "check license_url against the license (license-url-*)"),
         ParamSpec("provenance", "bool", True, "for collected shards, also apply the Commons license flags kept in "
                                               "their provenance table (NonFree, Restrictions, Copyrighted)"),
         ParamSpec("allow_restrictions", "bool", False, "keep files whose only problem is a Commons Restrictions "
                                                        "flag (license-restricted)"))
def license_stage(samples: list[Any], params: Mapping[str, Any] | None = None) -> list[Any]:
    """Stage `license`: keep samples with a permissive license, a non-empty attribution and a matching URL.

    Reasons: license-not-permissive, license-unknown, license-url-mismatch, attribution-missing,
    license-url-missing, license-restricted. params: require_attribution (default True), check_url (default True),
    provenance (default True: for collected shards, also apply the Commons license flags stored in the collection's
    provenance table beside the shard, see ``check_flags``), allow_restrictions (default False). Extras:
    license_spdx. No scores.
    OUR ASSUMPTION: GPIC keeps license name, URL and attribution per record but does not say it dropped records
    with an empty attribution or a license URL that disagrees with the license; we drop them by default (CC BY
    requires attribution; a mismatched URL makes the license claim doubtful), each switchable by a parameter.
    """
    from gpic_lab.engine.records import Decision

    params = params or {}
    need_attr, check_url = bool(params.get("require_attribution", True)), bool(params.get("check_url", True))
    flags_of = provenance_reader(bool(params.get("provenance", True)))
    allow_restricted = bool(params.get("allow_restrictions", False))
    out = []
    for s in samples:
        meta = s.meta
        lic = normalize(meta.get("license"), meta.get("license_url") if check_url else None)
        reason = lic.reason
        if reason is None:
            codes = [c for c, _m in check_record(meta)
                     if (need_attr or c != "attribution-missing") and (check_url or not c.startswith("license-url"))]
            codes += [c for c, _m in check_flags(flags_of(s), lic)
                      if not (allow_restricted and c == "license-restricted")]
            reason = codes[0] if codes else None
        out.append(Decision(s.key, reason is None, reason, extra={"license_spdx": lic.spdx}))
    return out
