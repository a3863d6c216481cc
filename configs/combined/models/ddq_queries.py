"""DDQ-DETR's query settings, carried onto another DINO-family model config."""

DDQ_QUERY_KEYS = (
    "dense_loss",
    "distinct_iou",
    "decoder_distinct_iou",
    "dense_ratio",
    "criterion",
)


def take_ddq_queries(model, ddq) -> None:
    """Copy ``ddq``'s (a DDQ-DETR model config) distinct- and dense-query settings, and the
    losses that go with them, onto ``model``."""
    for key in DDQ_QUERY_KEYS:
        model[key] = ddq[key]
    # DDQ's encoder loss covers the distinct queries, never every proposal.
    model.encoder_loss_on = "selected"
