"""The four claims of the design that a study tests, in the design's words.

Shared by :mod:`ontoscope.ontology` (which judges them) and :mod:`ontoscope.report` (which shows them);
it imports nothing, so the report stays free of torch.
"""

from __future__ import annotations

__all__ = ["STATEMENTS"]

#: Claim number -> statement.
STATEMENTS = {
    1: "Compression and downsampling induce entanglement: ICV scores fall as total stride grows and as the "
       "bottleneck narrows.",
    2: "Oscillatory features (vibrato, tremolo, beating/roughness) rarely become ICVs, while static ones "
       "(pitch, loudness, brightness) often do.",
    3: "More width, depth or data does not lift that ceiling.",
    4: "The latent ontology predicts the operational one: limits imposed by design can be told apart from "
       "limits imposed by data.",
}
