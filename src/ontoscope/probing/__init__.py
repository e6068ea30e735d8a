"""Operational ontology: what a model's sites encode, measured by probing and intervening."""
