"""License normalisation, GPIC's permissive allow-list, attribution strings and the `license` filter stage.

GPIC keeps only CC BY (any version, any port), CC0, public domain (marks, statements, US Government works) and
Flickr's "No known copyright restrictions". Everything else — NC, ND, SA, all rights reserved, GFDL, other free
licenses and every string this module does not recognise — is not permissive. Unknown strings are never guessed.
GPIC (paper §2.1) names CC BY, CC0, Public Domain and No-Known-Restrictions. OUR ASSUMPTION: "public domain" is read
widely, as every public-domain statement a source uses (the Public Domain Mark, Wikimedia Commons' PD-old, PD-US,
PD-USGov, PD-self, PD-ineligible, … templates), not only the Public Domain Mark.

Inputs understood: Flickr API license ids 0–16 and their names, Wikimedia Commons extmetadata
LicenseShortName / LicenseUrl values, plain GPIC strings ("CC BY 2.0"), SPDX ids, creativecommons.org URLs
(http/https, www, trailing slash or not, deed.xx, legalcode[.xx]) and case/spacing/hyphen variants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ALLOWED_FAMILIES = ("CC-BY", "CC0", "PD", "NKCR")
CC_VERSIONS = ("1.0", "2.0", "2.5", "3.0", "4.0")
NKCR_URL = "https://www.flickr.com/commons/usage/"
USGOV_URL = "https://www.usa.gov/government-works"

# Flickr API flickr.photos.licenses.getInfo: id -> (name, url)
FLICKR_LICENSES: dict[int, tuple[str, str]] = {
    0: ("All Rights Reserved", ""),
    1: ("Attribution-NonCommercial-ShareAlike License", "https://creativecommons.org/licenses/by-nc-sa/2.0/"),
    2: ("Attribution-NonCommercial License", "https://creativecommons.org/licenses/by-nc/2.0/"),
    3: ("Attribution-NonCommercial-NoDerivs License", "https://creativecommons.org/licenses/by-nc-nd/2.0/"),
    4: ("Attribution License", "https://creativecommons.org/licenses/by/2.0/"),
    5: ("Attribution-ShareAlike License", "https://creativecommons.org/licenses/by-sa/2.0/"),
    6: ("Attribution-NoDerivs License", "https://creativecommons.org/licenses/by-nd/2.0/"),
    7: ("No known copyright restrictions", NKCR_URL),
    8: ("United States Government Work", "http://www.usa.gov/copyright.shtml"),
    9: ("Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/"),
    10: ("Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/"),
    11: ("Attribution 4.0 International", "https://creativecommons.org/licenses/by/4.0/"),
    12: ("Attribution-ShareAlike 4.0 International", "https://creativecommons.org/licenses/by-sa/4.0/"),
    13: ("Attribution-NoDerivs 4.0 International", "https://creativecommons.org/licenses/by-nd/4.0/"),
    14: ("Attribution-NonCommercial 4.0 International", "https://creativecommons.org/licenses/by-nc/4.0/"),
    15: ("Attribution-NonCommercial-ShareAlike 4.0 International", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
    16: ("Attribution-NonCommercial-NoDerivs 4.0 International", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
}
FLICKR_PERMISSIVE_IDS = (4, 7, 8, 9, 10, 11)

# Exact (normalised) names that are not CC-parsable, -> (spdx, family, label)
_SPECIAL: dict[str, tuple[str, str, str]] = {}
for _names, _value in [
    (("all rights reserved", "arr", "copyrighted", "copyright", "(c)"),
     ("LicenseRef-AllRightsReserved", "ARR", "All Rights Reserved")),
    (("no known copyright restrictions", "no restrictions", "nkcr", "no known restrictions",
      "flickr no known copyright restrictions", "flickr commons", "no known copyright restriction"),
     ("LicenseRef-NoKnownCopyrightRestrictions", "NKCR", "No known copyright restrictions")),
    (("united states government work", "us government work", "u.s. government work", "pd usgov",
      "public domain us government", "pd usgov nasa", "pd usgov military"),
     ("LicenseRef-USGovWork", "PD", "United States Government Work")),
    (("public domain mark", "public domain mark 1.0", "pdm", "pdm 1.0", "pd mark", "publicdomainmark",
      "cc pdm", "cc pdm 1.0"),
     ("LicenseRef-PDM-1.0", "PD", "Public Domain Mark 1.0")),
    (("public domain dedication (cc0)", "public domain dedication", "cc0", "cc0 1.0", "cc zero", "cc 0",
      "cc zero 1.0", "cc0 1.0 universal", "cc0 1.0 universal (cc0 1.0) public domain dedication",
      "creative commons zero", "cc0 1.0 public domain dedication", "cc pddc", "public domain cc0"),
     ("CC0-1.0", "CC0", "CC0 1.0")),
    (("public domain", "pd", "publicdomain", "public-domain", "pd us", "pd old", "pd self", "pd author",
      "pd art", "pd old 70", "pd old 100", "pd us expired", "pd us no notice", "pd us not renewed", "pd textlogo",
      "pd shape", "pd ineligible", "pd simple", "pd 1923", "pd us 1923", "pd old auto", "pd scan", "pd because",
      "pd release", "pd user"),
     ("LicenseRef-PublicDomain", "PD", "Public domain")),
    (("gfdl", "gnu free documentation license", "gfdl 1.2", "gfdl 1.3", "gfdl self", "gnu fdl"),
     ("LicenseRef-GFDL", "GFDL", "GFDL")),
    (("fal", "free art license", "licence art libre", "lal", "fal 1.3", "free art license 1.3", "lal 1.3"), ("LicenseRef-FAL", "other", "Free Art License")),
    (("gpl", "gplv2", "gplv3", "gnu general public license", "lgpl"), ("LicenseRef-GPL", "other", "GPL")),
    (("copyrighted free use", "attribution", "attribution only", "cc sampling+"),
     ("LicenseRef-Other", "other", "Other")),
]:
    for _n in _names:
        _SPECIAL[_n] = _value

_LABELS = {"CC-BY": "BY", "CC-BY-SA": "BY-SA", "CC-BY-NC": "BY-NC", "CC-BY-ND": "BY-ND",
           "CC-BY-NC-SA": "BY-NC-SA", "CC-BY-NC-ND": "BY-NC-ND"}
_CC_URL = re.compile(r"^(?:https?:)?//(?:www\.)?creativecommons\.org/(licenses|publicdomain)/([a-z\-+]+)/"
                     r"(?:(\d\.\d)/?)?(?:([a-z]{2,3})/?)?(?:(?:deed|legalcode)(?:\.[a-z\-_]+)?)?/?(?:[?#].*)?$")


@dataclass(frozen=True, slots=True)
class License:
    """A normalised license.

    spdx: SPDX id (CC-BY-2.0, CC-BY-SA-3.0-DE, CC0-1.0) or LicenseRef-* for PD marks/statements, NKCR, ARR, GFDL,
    unversioned CC and unknown strings. family: CC-BY, CC-BY-SA, CC-BY-NC, CC-BY-ND, CC-BY-NC-SA, CC-BY-NC-ND,
    CC0, PD, NKCR, ARR, GFDL, other, unknown. permissive: on GPIC's allow-list. reason: None when permissive,
    else the stage reason code (license-not-permissive | license-unknown | license-url-mismatch); detail: why.
    """

    spdx: str
    family: str
    permissive: bool
    reason: str | None = None
    detail: str = ""
    version: str | None = None
    jurisdiction: str | None = None
    label: str = ""
    url: str = ""


def _cc(family: str, version: str | None, juris: str | None) -> License:
    """A CC license from its parts, with SPDX id, label, canonical URL and allow-list verdict."""
    if family == "CC0":
        return License("CC0-1.0", "CC0", True, version="1.0", label="CC0 1.0",
                       url="https://creativecommons.org/publicdomain/zero/1.0/")
    short = _LABELS[family]
    spdx = f"CC-{short}-{version}" if version else f"LicenseRef-CC-{short}"
    if juris and version:
        spdx += f"-{juris.upper()}"
    label = " ".join(x for x in ("CC", short, version, juris) if x)
    url = f"https://creativecommons.org/licenses/{short.lower()}/" + (f"{version}/" if version else "")
    url += f"{juris}/" if juris and version else ""
    return _verdict(License(spdx, family, False, version=version, jurisdiction=juris, label=label, url=url))


def _verdict(lic: License) -> License:
    """Fill permissive/reason/detail from the family."""
    from dataclasses import replace

    if lic.family in ALLOWED_FAMILIES:
        return replace(lic, permissive=True, reason=None, detail="")
    if lic.family == "unknown":
        return replace(lic, permissive=False, reason="license-unknown", detail="unrecognised license string")
    why = {"CC-BY-SA": "ShareAlike", "CC-BY-NC": "NonCommercial", "CC-BY-ND": "NoDerivatives",
           "CC-BY-NC-SA": "NonCommercial+ShareAlike", "CC-BY-NC-ND": "NonCommercial+NoDerivatives",
           "ARR": "all rights reserved", "GFDL": "GFDL (copyleft)", "other": "not on GPIC's allow-list"}[lic.family]
    return replace(lic, permissive=False, reason="license-not-permissive", detail=f"{lic.spdx}: {why}")


_SPECIAL_URLS = {
    "flickr.com/commons/usage": "no known copyright restrictions",
    "usa.gov/copyright.shtml": "united states government work",
    "usa.gov/government-works": "united states government work",
    "gnu.org/copyleft/fdl.html": "gfdl", "gnu.org/licenses/fdl": "gfdl",
    "gnu.org/licenses/gpl": "gpl", "en.wikipedia.org/wiki/public_domain": "public domain",
}


def _parse_url(url: str) -> License | None:
    """A License from a license URL, or None when the URL is not a recognised license URL."""
    u = url.strip().lower()
    m = _CC_URL.match(u)
    if m:
        kind, code, version, juris = m.groups()
        if kind == "publicdomain":
            if code == "zero":
                return _cc("CC0", "1.0", None)
            if code == "mark":
                return _from_special("public domain mark")
            return None
        family = "CC-" + code.upper()
        family = {"CC-BY-ND-NC": "CC-BY-NC-ND", "CC-BY-SA-NC": "CC-BY-NC-SA"}.get(family, family)
        if family not in _LABELS or (version and version not in CC_VERSIONS):
            return None
        return _cc(family, version, juris if version and juris else None)
    bare = re.sub(r"^(?:https?:)?//(?:www\.)?", "", u).rstrip("/")
    for prefix, name in _SPECIAL_URLS.items():
        if bare.startswith(prefix):
            return _from_special(name)
    return None


def _from_special(key: str) -> License:
    spdx, family, label = _SPECIAL[key]
    url = {"NKCR": NKCR_URL, "GFDL": "https://www.gnu.org/copyleft/fdl.html"}.get(family, "")
    if spdx == "LicenseRef-PDM-1.0":
        url = "https://creativecommons.org/publicdomain/mark/1.0/"
    elif spdx == "LicenseRef-USGovWork":
        url = USGOV_URL
    elif spdx == "CC0-1.0":
        return _cc("CC0", "1.0", None)
    return _verdict(License(spdx, family, False, label=label, url=url))


def _clean(name: str) -> str:
    s = name.strip().lower().replace("\u2010", "-").replace("\u2011", "-").replace("\u2013", "-")
    s = re.sub(r"<[^>]+>", " ", s)  # Commons extmetadata values may carry HTML
    s = re.sub(r"[_\s]+", " ", s).strip(" .;:")
    s = re.sub(r"\s*-\s*", " ", s)
    s = re.sub(r"\blicen[cs]e[sd]?\b", "", s)
    s = re.sub(r"\bcreative\s+commons\b", "cc", s)
    s = re.sub(r"\bnon\s*commercial\b", "noncommercial", s)
    s = re.sub(r"\bno\s*deriv(?:ative)?s?\b|\bnoderivatives\b", "noderivs", s)
    s = re.sub(r"\bshare\s*alike\b", "sharealike", s)
    s = re.sub(r"\bpublic\s*domain\b", "public domain", s)
    return re.sub(r"\s+", " ", s).strip(" ,")


_CC_WORDS = {"by": "by", "attribution": "by", "nc": "nc", "noncommercial": "nc", "nd": "nd", "noderivs": "nd",
             "sa": "sa", "sharealike": "sa"}
_FILLER = {"cc", "international", "generic", "unported", "deed", "legalcode", "and", "migrated"}  # Commons: "3.0 migrated"


def _parse_cc_name(s: str) -> License | None:
    """Parse a cleaned CC name ("cc by sa 3.0 de", "attribution noncommercial 4.0 international")."""
    tokens = re.findall(r"\d\.\d|[a-z0-9]+", s.replace("(", " ").replace(")", " "))
    if not tokens or tokens[0] not in ("cc", "by", "attribution"):
        return None
    if tokens[0] == "attribution" and not any(re.fullmatch(r"\d\.\d", t) for t in tokens):
        return None  # bare Commons {{Attribution}} template is not CC BY
    parts: set[str] = set()
    version = juris = None
    for tok in tokens:
        if tok in _CC_WORDS:
            parts.add(_CC_WORDS[tok])
        elif re.fullmatch(r"\d\.\d", tok):
            if tok not in CC_VERSIONS:
                return None
            version = version or tok
        elif tok in _FILLER:
            continue
        elif version and juris is None and re.fullmatch(r"[a-z]{2}|igo", tok):
            juris = tok
        else:
            return None
    if "by" not in parts:
        return None
    family = "CC-BY" + "".join(f"-{p.upper()}" for p in ("nc", "nd", "sa") if p in parts)
    if family not in _LABELS:  # e.g. ND+SA together
        return None
    return _cc(family, version, juris)


def _light(name: str) -> str:
    return re.sub(r"[\s_\-\u2010\u2011\u2013]+", " ", name.strip().lower())


_FLICKR_BY_NAME = {_light(n): i for i, (n, _u) in FLICKR_LICENSES.items()}
_REFS = {"licenseref-allrightsreserved": "all rights reserved", "licenseref-gfdl": "gfdl",
         "licenseref-noknowncopyrightrestrictions": "no known copyright restrictions",
         "licenseref-usgovwork": "united states government work", "licenseref-pdm-1.0": "public domain mark",
         "licenseref-publicdomain": "public domain", "licenseref-fal": "fal", "licenseref-gpl": "gpl"}


def _parse_name(name: str) -> License | None:
    ref = _REFS.get(name.strip().lower())
    if ref:
        return _from_special(ref)
    raw = name.strip()
    if raw.lower().startswith(("http:", "https:", "//", "www.", "creativecommons.org")):
        return _parse_url(raw if "//" in raw else "//" + raw)
    if re.fullmatch(r"\d{1,2}", raw) and int(raw) in FLICKR_LICENSES:
        return _parse_url(FLICKR_LICENSES[int(raw)][1]) or _parse_name(FLICKR_LICENSES[int(raw)][0])
    flickr_id = _FLICKR_BY_NAME.get(_light(raw))
    if flickr_id is not None and FLICKR_LICENSES[flickr_id][1].startswith("https://creativecommons.org/licenses"):
        return _parse_url(FLICKR_LICENSES[flickr_id][1])  # "Attribution License" etc. are the 2.0 suite
    s = _clean(name)
    if not s:
        return None
    if s in _SPECIAL:
        return _from_special(s)
    if s.startswith("pd ") and re.fullmatch(r"pd [a-z0-9 .]+", s):  # Commons PD-* templates
        return _from_special("public domain")
    return _parse_cc_name(s)


def _compatible(a: License, b: License) -> bool:
    """Whether two readings of one record's license agree (versions/ports compared only when both give one)."""
    if a.family != b.family:
        return False
    if a.version and b.version and a.version != b.version:
        return False
    return not (a.jurisdiction and b.jurisdiction and a.jurisdiction != b.jurisdiction)


@lru_cache(maxsize=4096)
def _normalize(name: str, url: str) -> License:
    by_name = _parse_name(name) if name else None
    by_url = _parse_url(url) if url else None
    if by_name is None and by_url is None:
        label = name.strip() or url.strip() or "(empty)"
        return _verdict(License("LicenseRef-Unknown", "unknown", False, label=label))
    if by_name is None:
        if name.strip():  # a name we cannot read: never trust the URL alone over it
            return _verdict(License("LicenseRef-Unknown", "unknown", False, label=name.strip(), url=url))
        return by_url  # type: ignore[return-value]
    if by_url is None or not url:
        return by_name
    if _compatible(by_name, by_url):
        if by_name.family.startswith("CC-BY") and by_url.version and not by_name.version:
            return by_url  # fill the version/port from the URL
        return by_name
    from dataclasses import replace

    return replace(by_name, permissive=False, reason="license-url-mismatch",
                   detail=f"name says {by_name.spdx}, license_url says {by_url.spdx}")


def normalize(name: str | int | None, url: str | None = None) -> License:
    """Normalise a license name/id (+ optional URL) to a License; unknown input is never permissive.

    When name and URL disagree (e.g. "CC BY 2.0" with a by-nc URL) the result keeps the name's spdx/family
    but is not permissive, with reason "license-url-mismatch".
    """
    return _normalize("" if name is None else str(name), url or "")


def license_family(name: str | int | None, url: str | None = None) -> str:
    """The license family ("CC-BY", "CC0", "PD", "NKCR", "CC-BY-SA", "CC-BY-NC", "ARR", "GFDL", "unknown", ...)."""
    return normalize(name, url).family


def source_of(meta: Mapping[str, Any]) -> str:
    """'flickr' | 'wikimedia' | 'other', from a record's attribution and license_url text."""
    text = f"{meta.get('attribution', '')} {meta.get('license_url', '')} {meta.get('source', '')}".lower()
    if "wikimedia" in text or "wikipedia" in text:
        return "wikimedia"
    if "flickr" in text:
        return "flickr"
    return "other"


SOURCE_NAMES = {"flickr": "Flickr", "wikimedia": "Wikimedia Commons", "commons": "Wikimedia Commons"}


def build_attribution(author: str, source: str, license_spdx_or_name: str, title: str | None = None) -> str:
    """The one attribution format: '"Title" by Author via Flickr (CC BY 2.0)' (title part omitted when empty).

    Args:
        author: creator name (HTML tags and whitespace runs are cleaned); must be non-empty.
        source: 'flickr', 'wikimedia'/'commons', or any other source name (used as written).
        license_spdx_or_name: anything normalize() reads; the label printed is the normalised one.
        title: optional work title.
    """
    from gpic_lab.errors import UsageError

    clean = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", x or "")).strip() for x in (author, title or "")]
    if not clean[0]:
        raise UsageError("build_attribution: empty author")
    lic = normalize(license_spdx_or_name)
    label = lic.label if lic.family != "unknown" else str(license_spdx_or_name).strip()
    where = SOURCE_NAMES.get(source.strip().lower(), source.strip())
    head = f"\"{clean[1]}\" by {clean[0]}" if clean[1] else clean[0]
    return f"{head} via {where} ({label})" if where else f"{head} ({label})"


def check_record(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Attribution/URL problems of one record as (code, message): attribution-missing, license-url-missing,
    license-url-mismatch (a recognised license URL that disagrees, or a non-CC URL for a CC license)."""
    problems: list[tuple[str, str]] = []
    if not str(meta.get("attribution") or "").strip():
        problems.append(("attribution-missing", "attribution is empty"))
    name, url = str(meta.get("license") or ""), str(meta.get("license_url") or "").strip()
    lic = _parse_name(name)
    if lic is None:
        return problems
    if not url:
        if lic.family.startswith("CC"):  # CC has a canonical URL; PD statements and NKCR may have none
            problems.append(("license-url-missing", f"license_url is empty for {lic.spdx}"))
        return problems
    by_url = _parse_url(url)
    if by_url is not None and not _compatible(lic, by_url):
        problems.append(("license-url-mismatch", f"license {name!r} ({lic.spdx}) but license_url {url} is {by_url.spdx}"))
    elif by_url is None and lic.family.startswith(("CC-", "CC0")):
        problems.append(("license-url-mismatch", f"license {name!r} ({lic.spdx}) but license_url {url} is not a "
                                                 "creativecommons.org license URL"))
    return problems


def check_flags(flags: Mapping[str, Any], lic: License | None = None) -> list[tuple[str, str]]:
    """Problems from Wikimedia Commons' license flags (CommonsMetadata extmetadata, kept by the collector in its
    provenance table) as (code, message): license-not-permissive (NonFree), license-restricted (Restrictions such
    as trademarked, personality, insignia: OUR ASSUMPTION that GPIC's "no restrictions on derived artifacts" excludes
    them), license-unknown (Copyrighted=False, i.e. a public-domain template, with a license that is not PD/CC0/NKCR:
    the two readings conflict and neither is guessed)."""
    problems: list[tuple[str, str]] = []
    if str(flags.get("nonfree") or "").strip().lower() == "true":
        problems.append(("license-not-permissive", "Commons marks the file NonFree"))
    restrictions = str(flags.get("restrictions") or "").strip()
    if restrictions:
        problems.append(("license-restricted", f"Commons restrictions: {restrictions}"))
    if str(flags.get("copyrighted") or "").strip().lower() == "false" and lic is not None \
            and lic.family not in ("PD", "CC0", "NKCR"):
        problems.append(("license-unknown", f"Copyrighted=False (public domain) but the license is {lic.spdx}"))
    return problems
