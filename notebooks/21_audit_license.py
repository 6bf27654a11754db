# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (gpic_lab)
#     language: python
#     name: gpic-lab
# ---

# %% [markdown]
# # 21 · License audit
#
# Audits the licenses of packaged GPIC output and of raw input: distribution by license family × source × split ×
# tier (samples and megapixels), non-permissive leaks (must be **zero** in packaged output), missing or mismatched
# attribution / `license_url`, licenses by year of retrieval, and a CSV attribution report a downstream user can
# publish.
#
# - **Inputs:** packaged shards (default `auto`: the output of notebook 06's `gpic_lab.pack.packer.pack`,
#   `interim/06_pack/packed`, when it exists, else the clean sample splits) and raw shards (default: `sample/raw`, which
#   holds planted non-permissive and badly attributed records).
# - **Outputs:** `interim/21_audit_license/attribution.csv`, `leaks_raw.parquet`, figures
#   `figures/21_audit_license/{license_families.png,license_sunburst.html}`, metrics.
# - **Package:** `gpic_lab.audits.license` (`license_table`, `distribution`, `leaks`, `attribution_problems`,
#   `by_year`, `attribution_report`, `family_figure`, `sunburst`); license rules from `gpic_lab.core.licenses`.

# %% tags=["parameters"]
packaged: str = "auto"  # "auto": notebook 06's pack output if present, else the clean sample splits; or comma-separated shard files/dirs, data-root relative
raw: str = "sample/raw"  # comma-separated raw shard files/dirs to audit for leaks ("": skip)
breakdown: str = "license_family,source,split_dir,tier"  # columns of the distribution table

# %%
import pandas as pd

from gpic_lab import paths, plots, runs
from gpic_lab.audits import license as audit
from gpic_lab.fsio import write_parquet_atomic

stage = "21_audit_license"
out_dir = paths.interim_dir(stage)
packaged_paths = audit.packaged_paths(packaged)
print("packaged output audited:", ", ".join(str(p) for p in packaged_paths))
raw_paths = [paths.resolve_data(p.strip()) for p in raw.split(",") if p.strip()]
by = tuple(c.strip() for c in breakdown.split(",") if c.strip())

# %% [markdown]
# ## License facts per sample
# One row per sample, from the JSON sidecars only (no image decoding).

# %%
table = audit.license_table(packaged_paths)
raw_table = audit.license_table(raw_paths) if raw_paths else table.iloc[0:0]
pd.DataFrame({"packaged": audit.summary(table), "raw": audit.summary(raw_table)})

# %% [markdown]
# ## Distribution (samples and megapixels)
# A sample listed in several tiers counts once per tier.

# %%
audit.distribution(table, by=by)

# %%
fig = audit.family_figure(pd.concat([table, raw_table]), "packaged + raw")
plots.save(fig, stage, "license_families")

# %%
sun = audit.sunburst(pd.concat([table, raw_table]), "License status → family → source → split dir")
plots.save(sun, stage, "license_sunburst")

# %% [markdown]
# ## Non-permissive leaks
# Packaged output must have none; raw input shows what the license stage has to drop.

# %%
packaged_leaks = audit.leaks(table)
raw_leaks = audit.leaks(raw_table)
write_parquet_atomic(out_dir / "leaks_raw.parquet", raw_leaks)
all_leaks = pd.concat([packaged_leaks.assign(set="packaged"), raw_leaks.assign(set="raw")])
all_leaks.assign(key=all_leaks["key"].str[:12])

# %% [markdown]
# ## Missing or mismatched attribution / license_url

# %%
problems = pd.concat([audit.attribution_problems(table).assign(set="packaged"),
                      audit.attribution_problems(raw_table).assign(set="raw")])
problems.assign(key=problems["key"].str[:12])

# %% [markdown]
# ## Licenses by year of retrieval

# %%
audit.by_year(pd.concat([table, raw_table]))

# %% [markdown]
# ## Attribution report
# Permissive samples only: key, attribution, license, SPDX id, license URL, source.

# %%
report = audit.attribution_report(table, out_dir / "attribution.csv")
pd.read_csv(report).head(10)

# %%
assert len(packaged_leaks) == 0, f"{len(packaged_leaks)} non-permissive samples in packaged output"
assert len(pd.read_csv(report)) == int(table["permissive"].sum())
assert audit.distribution(table, by=("license_family",))["samples"].sum() == len(table)

# %%
runs.record({"packaged": audit.summary(table), "raw": audit.summary(raw_table),
             "packaged_leaks": len(packaged_leaks), "raw_leaks": len(raw_leaks),
             "packaged_paths": [str(p) for p in packaged_paths], "attribution_report": str(report)}, stage)
