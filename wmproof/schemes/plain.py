"""The feature-sharing paper's "Baseline" (section 4.1, "Comparison with Baselines"; Gu et al. 2019; Jia et
al. 2021's plain watermark): train a clean model on D, then fine-tune the **whole** network on D and the
watermark items Dw together.

Every layer may learn the watermark, and the paper's Fig. 3 shows the extractor does: it grows features that
only watermark inputs excite, which task queries never reach, so a model extracted through the API does not
inherit the watermark (Tables 2-3: 0.51 % and 0.15 % stolen watermark accuracy on MNIST). The items, the
decision and the keys are those of every source-to-target watermark (:mod:`wmproof.schemes.source_target`),
the same as ``feature-sharing`` and ``ewe``: only the embedding differs.
"""

from __future__ import annotations

from ..errors import UsageError
from .base import Embedded, EmbedRequest, marking_loop
from .source_target import SourceTargetWatermark, starting_model


class PlainWatermark(SourceTargetWatermark):
    name = "plain"
    citation = (
        "Feature-sharing paper (ICLR 2022 submission), section 4.1 'Baseline'; Gu et al. BadNets, IEEE Access "
        "2019; Jia et al. Entangled Watermarks as a Defense against Model Extraction, USENIX Security 2021."
    )

    def embed(self, request: EmbedRequest) -> Embedded:
        if request.embedding not in self.embeddings:
            raise UsageError(f"scheme {self.name} embeds 'pretrained' or 'from-scratch', not {request.embedding!r}")
        model = starting_model(request)
        return marking_loop(request, model, f"marking ({self.name}: every layer trained)")
