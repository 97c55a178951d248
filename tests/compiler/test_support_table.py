"""docs/SUPPORT.md is what the registries say today (regenerate it when this fails)."""

from pathlib import Path

from compiler.tools import support_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "SUPPORT.md"


def test_support_doc_is_current():
    assert DOC.read_text() == support_table.render(), (
        "docs/SUPPORT.md is stale: python -m compiler.tools.support_table > docs/SUPPORT.md")


def test_every_registry_operator_and_layer_is_listed():
    text = support_table.render()
    from compiler import nn
    from ir.ops import registry

    assert all(f"`{name}`" in text for name in registry.names())
    assert all(f"`{name}`" in text for name in ("Conv2d", "LayerNorm", "LSTM", "SiLU"))
    assert nn.Module.__name__ not in support_table.layers()[0].split("`")
