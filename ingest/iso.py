"""ISO code tables used by validation: countries (3166-1 alpha-2) and currencies (4217).

Plain constants; membership checks are set lookups on the hot path.
"""

from __future__ import annotations

#: ISO 3166-1 alpha-2: the 249 officially assigned codes.
COUNTRIES: frozenset[str] = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
VN VU WF WS YE YT ZA ZM ZW
""".split())  # noqa: SIM905 - a table, not a list literal

#: ISO 4217 active currency codes with their minor-unit exponent.
_CURRENCY_EXPONENTS: dict[int, str] = {
    2: """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP
        BYN BZD CAD CDF CHF CNY COP CRC CUP CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
        GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR
        LRD LSL MAD MDL MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB
        PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC
        SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWL""",
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
}
CURRENCY_EXPONENT: dict[str, int] = {
    code: exponent for exponent, codes in _CURRENCY_EXPONENTS.items() for code in codes.split()
}

#: Approximate units of each currency per US dollar (reference rates: the generator
#: draws amounts in USD; the detectors compare amounts across currencies in USD).
PER_USD = {"USD": 1.0, "GBP": 0.79, "EUR": 0.92, "CAD": 1.36, "BRL": 5.0, "MXN": 17.0,
           "INR": 83.0, "JPY": 150.0, "AUD": 1.5, "SEK": 10.5, "PLN": 4.0, "RON": 4.6,
           "NGN": 1500.0, "UAH": 39.0, "VND": 24500.0, "IDR": 15700.0, "THB": 36.0, "TRY": 32.0}
