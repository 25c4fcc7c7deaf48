"""The deadlines and interpretation switches of SPEC.md, in one place.

Every duration the rules speak of lives here and nowhere else.  A deadline is computed
from the policy when the step that starts it is decided, and is then stored in the event,
so changing the policy never rewrites history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Policy:
    #: C-ON-4: an online order still unpaid this long after it was placed is cancelled.
    payment_window: timedelta = 24 * HOUR
    #: R-1: the merchant answers a return request within this.
    merchant_response_window: timedelta = 48 * HOUR
    #: R-2: the approved user submits the return tracking number within this.
    tracking_window: timedelta = 7 * DAY
    #: R-3: the merchant confirms receipt of the returned goods within this.
    receipt_window: timedelta = 7 * DAY
    #: R-COD-4: the cod merchant uploads the refund voucher within this.
    voucher_window: timedelta = 48 * HOUR
    #: E-2 (interpretation): the exchange's replacement ships within this of receipt.
    reship_window: timedelta = 48 * HOUR
    #: D-1 (interpretation): one extension of the receipt deadline (R-3) moves it this far.
    receipt_extension: timedelta = 7 * DAY
    #: A-1 (interpretation, as WeChat's 纠纷 window): the user appeals a rejection within this.
    appeal_window: timedelta = 7 * DAY
    #: A-2 (interpretation): the merchant submits evidence within this of the appeal.
    evidence_window: timedelta = 48 * HOUR
    #: The seed sets no limit for asking a return; a platform may (e.g. 7 days after delivery).
    return_window: timedelta | None = None
    #: Postage is never refunded by a return (R-ON-4; interpretation for cod).
    refund_postage_on_return: bool = False
    #: R-5 (interpretation): the user may withdraw a case before submitting tracking.
    user_may_withdraw: bool = True


DEFAULT_POLICY = Policy()
