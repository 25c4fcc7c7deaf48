import aftersales


def test_public_api_is_pinned() -> None:
    assert sorted(aftersales.__all__) == sorted([
        "DEFAULT_POLICY", "AftersalesError", "Command", "CommandRefused", "ConflictError",
        "Ledger", "Order", "Outcome", "Policy", "StoreConfigError", "history_entry",
        "order_uuid", "parse_command", "status_document",
    ])
    for name in aftersales.__all__:
        assert getattr(aftersales, name) is not None


def test_refusals_are_aftersales_errors() -> None:
    assert issubclass(aftersales.CommandRefused, aftersales.AftersalesError)
    assert issubclass(aftersales.StoreConfigError, aftersales.AftersalesError)
    assert issubclass(aftersales.ConflictError, aftersales.AftersalesError)
