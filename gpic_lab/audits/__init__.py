"""Dataset audits: licenses (`license`), caption hallucinations (`hallucination`), cross-level consistency
(`consistency`), LLM-as-judge scoring (`judge`) and bias (`bias`). Each returns pandas tables and figures;
notebooks 21-23 drive them."""
