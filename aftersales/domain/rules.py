"""Every rule ID of SPEC sections 2, 3, 7, 8 and 9 and every refusal code (sections 3 and
11), named once (the violation and lapse names of section 4 are `aftersales.domain.states`'s).

Code names a rule by its constant here, never by spelling its ID, so that a rule's
enforcement, its deadline's origin and its read-model rows can be found from one name
(`grep -n R_COD_4`).  docs/rules.md gives each ID's text, where it is enforced, and its
tests; `tests/test_rule_ids.py` checks that every ID here is documented and tested.
"""

from __future__ import annotations

from typing import Final

# Cancellation (SPEC section 2)
C_COD_1: Final = "C-COD-1"  # the user cannot cancel a cash-on-delivery order
C_COD_2: Final = "C-COD-2"  # the merchant may cancel a cod order before it ships
C_COD_3: Final = "C-COD-3"  # once shipped, only the platform cancels a cod order
C_ON_1: Final = "C-ON-1"  # the user may cancel an unpaid online order
C_ON_2: Final = "C-ON-2"  # after payment the user cancels through customer service
C_ON_3: Final = "C-ON-3"  # the merchant cannot cancel an online order
C_ON_4: Final = "C-ON-4"  # an online order unpaid by its deadline is cancelled
C_ANY: Final = "C-ANY"  # nothing happens after cancellation; delivered is final

# Returns (SPEC section 3)
R_1: Final = "R-1"  # the merchant answers a return request in time, else approved
R_2: Final = "R-2"  # the user sends the return tracking in time, else the case closes
R_3: Final = "R-3"  # the merchant confirms receipt in time, else received
R_ON_4: Final = "R-ON-4"  # online: the platform refunds at once on receipt
R_COD_4: Final = "R-COD-4"  # a cod merchant uploads the refund voucher in time
R_5: Final = "R-5"  # withdrawal only before the return tracking

# After-sale kinds (SPEC section 7)
F_1: Final = "F-1"  # refund before shipment: approved, or refused by shipping
F_2: Final = "F-2"  # refund after shipment, the goods kept
F_3: Final = "F-3"  # refund-only is for online orders
E_1: Final = "E-1"  # exchange: answer, tracking and receipt as R-1..R-3
E_2: Final = "E-2"  # the replacement ships in time, else the exchange turns into a refund
R_6: Final = "R-6"  # the merchant may refuse the returned goods while they are in transit

# Platform intervention (SPEC section 8)
A_1: Final = "A-1"  # the user appeals a merchant's rejection, once, within the appeal window
A_2: Final = "A-2"  # the merchant submits evidence once, in time, else ruled for the user
A_3: Final = "A-3"  # the platform rules while the case is arbitrating: outcome and blame
A_4: Final = "A-4"  # a ruling for the user continues the case as if the merchant agreed

# Deadline changes (SPEC section 9)
D_1: Final = "D-1"  # the merchant extends the receipt deadline once
D_2: Final = "D-2"  # the platform moves a pending deadline to a given instant

#: The rule IDs of SPEC sections 2, 3, 7, 8 and 9.
RULE_IDS: Final = (C_COD_1, C_COD_2, C_COD_3, C_ON_1, C_ON_2, C_ON_3, C_ON_4, C_ANY,
                   R_1, R_2, R_3, R_ON_4, R_COD_4, R_5,
                   F_1, F_2, F_3, E_1, E_2, R_6, A_1, A_2, A_3, A_4, D_1, D_2)

# Refusal codes beside the rule IDs
INPUT: Final = "INPUT"  # a line that is not a valid command
TIME: Final = "TIME"  # business time going back on an order
UNKNOWN_ORDER: Final = "UNKNOWN-ORDER"
DUPLICATE_ORDER: Final = "DUPLICATE-ORDER"
DUPLICATE_ID: Final = "DUPLICATE-ID"  # a command id applied before with other content
FLOW: Final = "FLOW"  # a step the order's status does not allow
R_OPEN: Final = "R-OPEN"  # a return asked while one is open
R_AMOUNT: Final = "R-AMOUNT"  # an amount beyond what may be refunded
DEADLINE: Final = "DEADLINE"  # a step after its deadline passed
INTEGRITY: Final = "INTEGRITY"  # the order's stored history fails its chain (section 11)
FUTURE: Final = "FUTURE"  # business time too far ahead of the wall clock

#: Every refusal code that is not a rule ID.
REFUSAL_CODES: Final = (INPUT, TIME, UNKNOWN_ORDER, DUPLICATE_ORDER, DUPLICATE_ID, FLOW,
                        R_OPEN, R_AMOUNT, DEADLINE, INTEGRITY, FUTURE)
