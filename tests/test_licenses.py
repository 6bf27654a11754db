"""License normalisation against real-world Flickr / Wikimedia Commons strings, attribution, checks, the stage."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gpic_lab.core.licenses import (
    FLICKR_LICENSES,
    FLICKR_PERMISSIVE_IDS,
    build_attribution,
    check_record,
    license_family,
    normalize,
    source_of,
)
from gpic_lab.errors import UsageError
from gpic_lab.filters.license import license_stage

# (name, url, expected spdx, expected permissive) — strings as the Flickr API, Commons extmetadata and GPIC write them
REAL_WORLD = [
    # Flickr API flickr.photos.licenses.getInfo names
    ("All Rights Reserved", "", "LicenseRef-AllRightsReserved", False),
    ("Attribution-NonCommercial-ShareAlike License", "https://creativecommons.org/licenses/by-nc-sa/2.0/",
     "CC-BY-NC-SA-2.0", False),
    ("Attribution-NonCommercial License", "https://creativecommons.org/licenses/by-nc/2.0/", "CC-BY-NC-2.0", False),
    ("Attribution-NonCommercial-NoDerivs License", "https://creativecommons.org/licenses/by-nc-nd/2.0/",
     "CC-BY-NC-ND-2.0", False),
    ("Attribution License", "https://creativecommons.org/licenses/by/2.0/", "CC-BY-2.0", True),
    ("Attribution-ShareAlike License", "https://creativecommons.org/licenses/by-sa/2.0/", "CC-BY-SA-2.0", False),
    ("Attribution-NoDerivs License", "https://creativecommons.org/licenses/by-nd/2.0/", "CC-BY-ND-2.0", False),
    ("No known copyright restrictions", "https://www.flickr.com/commons/usage/",
     "LicenseRef-NoKnownCopyrightRestrictions", True),
    ("United States Government Work", "http://www.usa.gov/copyright.shtml", "LicenseRef-USGovWork", True),
    ("Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0", True),
    ("Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/", "LicenseRef-PDM-1.0", True),
    ("Attribution 4.0 International", "https://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0", True),
    ("CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/", "CC-BY-NC-SA-4.0", False),
    # Flickr names without URL, case / hyphen / spacing variants
    ("attribution license", None, "CC-BY-2.0", True),
    ("ATTRIBUTION-NONCOMMERCIAL LICENSE", None, "CC-BY-NC-2.0", False),
    ("Attribution – NonCommercial License", None, "CC-BY-NC-2.0", False),
    ("no known copyright restrictions", None, "LicenseRef-NoKnownCopyrightRestrictions", True),
    ("United States government work", None, "LicenseRef-USGovWork", True),
    # Wikimedia Commons extmetadata LicenseShortName / LicenseUrl
    ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0", "CC-BY-SA-4.0", False),
    ("CC BY-SA 3.0", "https://creativecommons.org/licenses/by-sa/3.0", "CC-BY-SA-3.0", False),
    ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0", "CC-BY-4.0", True),
    ("CC BY 3.0", "https://creativecommons.org/licenses/by/3.0", "CC-BY-3.0", True),
    ("CC BY 2.5", "https://creativecommons.org/licenses/by/2.5", "CC-BY-2.5", True),
    ("CC BY 1.0", "https://creativecommons.org/licenses/by/1.0", "CC-BY-1.0", True),
    ("CC BY-SA 3.0 de", "https://creativecommons.org/licenses/by-sa/3.0/de/deed.en", "CC-BY-SA-3.0-DE", False),
    ("CC BY 3.0 us", "https://creativecommons.org/licenses/by/3.0/us/deed.en", "CC-BY-3.0-US", True),
    ("CC BY 3.0 igo", "https://creativecommons.org/licenses/by/3.0/igo/deed.en", "CC-BY-3.0-IGO", True),
    ("CC BY-SA 2.0 fr", "https://creativecommons.org/licenses/by-sa/2.0/fr/deed.en", "CC-BY-SA-2.0-FR", False),
    ("CC0", "http://creativecommons.org/publicdomain/zero/1.0/deed.en", "CC0-1.0", True),
    ("Public domain", "", "LicenseRef-PublicDomain", True),
    ("Public domain", None, "LicenseRef-PublicDomain", True),
    ("PD-US", None, "LicenseRef-PublicDomain", True),
    ("PD-old-70", None, "LicenseRef-PublicDomain", True),
    ("PD-self", None, "LicenseRef-PublicDomain", True),
    ("PD-Art", None, "LicenseRef-PublicDomain", True),
    ("PD-USGov-NASA", None, "LicenseRef-USGovWork", True),
    ("GFDL", "http://www.gnu.org/copyleft/fdl.html", "LicenseRef-GFDL", False),
    ("GFDL 1.2", "https://www.gnu.org/licenses/old-licenses/fdl-1.2.html", "LicenseRef-GFDL", False),
    ("FAL", "http://artlibre.org/licence/lal/en", "LicenseRef-FAL", False),
    ("No restrictions", "https://www.flickr.com/commons/usage/", "LicenseRef-NoKnownCopyrightRestrictions", True),
    ("Attribution", None, "LicenseRef-Other", False),  # Commons {{Attribution}} template, not CC BY
    ("Copyrighted free use", None, "LicenseRef-Other", False),
    ("cc-by-sa-3.0", None, "CC-BY-SA-3.0", False),
    ("CC BY-SA 3.0 migrated", None, "CC-BY-SA-3.0", False),
    ("CC-BY-SA-3.0-migrated", None, "CC-BY-SA-3.0", False),
    ("cc-by-sa-4.0,3.0,2.5,2.0,1.0", None, "CC-BY-SA-4.0", False),
    ("CC PDM 1.0", "https://creativecommons.org/publicdomain/mark/1.0/", "LicenseRef-PDM-1.0", True),
    ("FAL 1.3", None, "LicenseRef-FAL", False),
    ("PD-US-expired", None, "LicenseRef-PublicDomain", True),
    ("PD-USGov", None, "LicenseRef-USGovWork", True),
    ("Copyrighted", "", "LicenseRef-AllRightsReserved", False),
    ("CC BY 2.0 kr", "https://creativecommons.org/licenses/by/2.0/kr/deed.en", "CC-BY-2.0-KR", True),
    ("Attribution 2.0 Generic (CC BY 2.0)", None, "CC-BY-2.0", True),
    ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/deed.zh-hans", "CC-BY-4.0", True),
    ("https://creativecommons.org/licenses/by/2.0/deed.en_GB", None, "CC-BY-2.0", True),
    ("http://creativecommons.org/licenses/by-sa/2.0/legalcode", None, "CC-BY-SA-2.0", False),
    ("OGL 3", None, "LicenseRef-Unknown", False),
    ("17", None, "LicenseRef-Unknown", False),  # not a Flickr license id
    ("cc-by-4.0", None, "CC-BY-4.0", True),
    # plain GPIC strings and SPDX ids
    ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/", "CC-BY-2.0", True),
    ("CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0", True),
    ("Public Domain Mark 1.0", "https://creativecommons.org/publicdomain/mark/1.0/", "LicenseRef-PDM-1.0", True),
    ("CC-BY-2.0", None, "CC-BY-2.0", True),
    ("CC-BY-NC-ND-4.0", None, "CC-BY-NC-ND-4.0", False),
    ("CC-BY-3.0-DE", None, "CC-BY-3.0-DE", True),
    ("cc by  2.0", None, "CC-BY-2.0", True),
    ("cc_by_2.0", None, "CC-BY-2.0", True),
    ("Creative Commons Attribution 4.0 International License", None, "CC-BY-4.0", True),
    ("Creative Commons Attribution-Share Alike 3.0 Unported", None, "CC-BY-SA-3.0", False),
    ("Creative Commons Attribution-NonCommercial-NoDerivatives 4.0 International", None, "CC-BY-NC-ND-4.0", False),
    ("Attribution-NonCommercial 4.0 International", None, "CC-BY-NC-4.0", False),
    # creativecommons.org URLs given as the name or only as the URL
    ("http://creativecommons.org/licenses/by/2.0/", None, "CC-BY-2.0", True),
    ("https://creativecommons.org/licenses/by/2.0", None, "CC-BY-2.0", True),
    ("https://www.creativecommons.org/licenses/by/3.0/deed.de", None, "CC-BY-3.0", True),
    ("https://creativecommons.org/licenses/by/4.0/legalcode", None, "CC-BY-4.0", True),
    ("https://creativecommons.org/licenses/by/4.0/legalcode.fr", None, "CC-BY-4.0", True),
    ("//creativecommons.org/licenses/by-nc/3.0/", None, "CC-BY-NC-3.0", False),
    ("", "https://creativecommons.org/licenses/by/2.0/", "CC-BY-2.0", True),
    ("", "https://creativecommons.org/licenses/by-nd/2.0/deed.en", "CC-BY-ND-2.0", False),
    ("", "https://creativecommons.org/publicdomain/mark/1.0/", "LicenseRef-PDM-1.0", True),
    # unversioned CC BY takes the URL's version
    ("CC BY", "https://creativecommons.org/licenses/by/3.0/de/", "CC-BY-3.0-DE", True),
    ("CC BY", None, "LicenseRef-CC-BY", True),
    # unknown strings are never guessed permissive
    ("Custom Museum License v3", "https://example.org/license", "LicenseRef-Unknown", False),
    ("Photo by John Smith", None, "LicenseRef-Unknown", False),
    ("CC BY 5.0", None, "LicenseRef-Unknown", False),
    ("free to use", None, "LicenseRef-Unknown", False),
    ("", "", "LicenseRef-Unknown", False),
    (None, None, "LicenseRef-Unknown", False),
    ("https://example.org/licenses/by/2.0/", None, "LicenseRef-Unknown", False),
    ("https://creativecommons.org/licenses/by/9.9/", None, "LicenseRef-Unknown", False),
]


@pytest.mark.parametrize("name,url,spdx,permissive", REAL_WORLD)
def test_real_world_table(name: str | None, url: str | None, spdx: str, permissive: bool) -> None:
    lic = normalize(name, url)
    assert (lic.spdx, lic.permissive) == (spdx, permissive), lic
    assert (lic.reason is None) == permissive
    if not permissive:
        assert lic.reason in ("license-not-permissive", "license-unknown") and lic.detail


def test_flickr_ids_0_to_16() -> None:
    assert sorted(FLICKR_LICENSES) == list(range(17))
    for i, (name, url) in FLICKR_LICENSES.items():
        by_id, by_name = normalize(i), normalize(name, url or None)
        assert by_id.spdx == by_name.spdx != "LicenseRef-Unknown", (i, name)
        assert by_id.permissive == (i in FLICKR_PERMISSIVE_IDS), (i, name)
        assert normalize(str(i)).spdx == by_id.spdx


def test_families() -> None:
    assert license_family("CC BY 2.0") == "CC-BY"
    assert license_family("CC BY-NC-SA 2.0") == "CC-BY-NC-SA"
    assert license_family("No known copyright restrictions") == "NKCR"
    assert license_family("Public Domain Mark 1.0") == "PD"
    assert license_family("All Rights Reserved") == "ARR"
    assert license_family("GFDL") == "GFDL"
    assert license_family("whatever") == "unknown"
    assert license_family("", "https://creativecommons.org/publicdomain/zero/1.0/") == "CC0"


def test_name_url_conflict_is_not_permissive() -> None:
    lic = normalize("CC BY 2.0", "https://creativecommons.org/licenses/by-nc/2.0/")
    assert lic.family == "CC-BY" and not lic.permissive and lic.reason == "license-url-mismatch"
    assert "CC-BY-NC-2.0" in lic.detail
    # an unreadable name is not rescued by a permissive URL
    assert not normalize("Museum terms", "https://creativecommons.org/licenses/by/2.0/").permissive
    assert normalize("CC BY 3.0", "https://creativecommons.org/licenses/by/3.0/de/").permissive


def test_attribution_format() -> None:
    assert build_attribution("Jane Doe", "flickr", "CC-BY-2.0", "Sunset") == '"Sunset" by Jane Doe via Flickr (CC BY 2.0)'
    assert build_attribution("<a href='x'>Jane  Doe</a>", "wikimedia", "Public domain") == \
        "Jane Doe via Wikimedia Commons (Public domain)"
    assert build_attribution("NASA", "flickr", "7") == "NASA via Flickr (No known copyright restrictions)"
    with pytest.raises(UsageError, match="empty author"):
        build_attribution("  ", "flickr", "CC BY 2.0")


def test_source_of() -> None:
    assert source_of({"attribution": "x by y via Flickr (CC BY 2.0)"}) == "flickr"
    assert source_of({"attribution": "y via Wikimedia Commons (CC0 1.0)"}) == "wikimedia"
    assert source_of({"attribution": "", "license_url": "https://www.flickr.com/commons/usage/"}) == "flickr"
    assert source_of({"attribution": "Cat by S (CC0 1.0), via scikit-image"}) == "other"
    assert source_of({}) == "other"


def test_check_record() -> None:
    ok = {"license": "CC BY 2.0", "license_url": "https://creativecommons.org/licenses/by/2.0/", "attribution": "a"}
    assert check_record(ok) == []
    assert [c for c, _ in check_record({**ok, "attribution": " "})] == ["attribution-missing"]
    assert [c for c, _ in check_record({**ok, "license_url": ""})] == ["license-url-missing"]
    bad = check_record({**ok, "license_url": "https://creativecommons.org/licenses/by-sa/2.0/"})
    assert bad[0][0] == "license-url-mismatch" and "CC-BY-SA-2.0" in bad[0][1]
    assert check_record({**ok, "license_url": "https://example.org/terms"})[0][0] == "license-url-mismatch"
    # PD / NKCR have no canonical URL: a source page describing the status is accepted
    nkcr = {"license": "No known copyright restrictions", "license_url": "https://example.org/about", "attribution": "a"}
    assert check_record(nkcr) == []
    pd = {"license": "Public Domain", "license_url": "https://creativecommons.org/publicdomain/mark/1.0/", "attribution": "a"}
    assert check_record(pd) == []


def test_stage_on_sample_matches_ground_truth(sample_dir: Path) -> None:
    from gpic_lab.shards.reader import iter_samples

    truth = {r["key"]: r for r in csv.DictReader((sample_dir / "ground_truth.csv").open())}
    planted = {k: r["label"] for k, r in truth.items() if r["kind"] == "license"}
    assert len(planted) >= 8
    seen = {}
    for part in ("raw", "train", "val", "test"):
        samples = list(iter_samples([sample_dir / part], images=False))
        decisions = license_stage(samples, {})
        assert [d.key for d in decisions] == [s.key for s in samples]
        seen.update({d.key: d for d in decisions})
        assert all(d.extra["license_spdx"] for d in decisions)
    for key, label in planted.items():
        assert not seen[key].keep and seen[key].reason == label, (key, label, seen[key])
    wrongly_dropped = [k for k, d in seen.items() if not d.keep and k not in planted]
    assert wrongly_dropped == []
    # params can switch off the attribution check
    raw = list(iter_samples([sample_dir / "raw"], images=False))
    relaxed = {d.key: d for d in license_stage(raw, {"require_attribution": False})}
    missing = next(k for k, lab in planted.items() if lab == "attribution-missing")
    assert relaxed[missing].keep


def test_license_stage_through_the_engine(sample_dir: Path, tmp_path: Path) -> None:
    import pandas as pd

    from gpic_lab.engine.stages import run_stage

    summary = run_stage("license", [str(sample_dir / "raw"), str(sample_dir / "train")], tmp_path, workers=1,
                        progress=False)
    frame = pd.read_parquet(tmp_path / "decisions.parquet")
    truth = {r["key"]: r["label"] for r in csv.DictReader((sample_dir / "ground_truth.csv").open())
             if r["kind"] == "license"}
    dropped = frame[~frame["keep"]].set_index("key")["reason"].to_dict()
    assert dropped == truth
    assert summary["dropped"] == len(truth) and summary["kept"] + summary["dropped"] == len(frame)
    assert frame["license_spdx"].notna().all()
    counts = pd.read_csv(tmp_path / "counts.csv")
    assert counts["count"].sum() == len(frame)
    assert set(counts.loc[counts["reason"] == "license-not-permissive", "license_family"]) == \
        {"CC-BY-NC", "ARR", "CC-BY-SA", "GFDL", "CC-BY-ND"}
