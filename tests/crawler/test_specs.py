import pandas as pd

from carscope.crawler.dataset import SPECS_COLUMNS
from carscope.crawler.specs import clean_specs


def test_messy_catalog_values_become_typed_columns():
    rows = {
        "2023_a_b": [("MSRP", "$ 34,500*"), ("Engine Type", "Turbo Regular Unleaded V-6 3.5 L/214"),
                     ("SAE Net Horsepower @ RPM", "300hp @ 5,600 rpm"), ("Gas Mileage", "19/26 mpg"),
                     ("Drivetrain", "Four Wheel Drive"), ("Front Wheel Size (in)", '20" x 8.5'),
                     ("Passenger Capacity", "7"), ("Length, Overall (in)", "201.4"), ("Displacement", "N/A")],
        "2023_c_d": [("MSRP", "$41,000"), ("Engine Type", "Electric"), ("SAE Net Horsepower @ RPM", "402"),
                     ("Gas Mileage", "120 MPGe City/101 MPGe Hwy"), ("Drivetrain", "All Wheel Drive")],
        "2022_e_f": [("MSRP", "$22,950"), ("Engine Type", "2.0L I4 Gas/E85"), ("Gas Mileage", "25 City / 33 Hwy"),
                     ("Drivetrain", "Front Wheel Drive"), ("Body Style", "4dr Car")],
    }
    raw = pd.DataFrame([(m, k, v) for m, kv in rows.items() for k, v in kv], columns=["model_id", "key", "value"])
    pages = pd.DataFrame({"model_id": list(rows), "make": ["A", "C", "E"], "model": ["B", "D", "F"],
                          "year": [2023, 2023, 2022], "page_url": ["u1", "u2", "u3"],
                          "crawled_at": pd.to_datetime([0, 0, 0], unit="s", utc=True)})
    got = clean_specs(raw, pages).set_index("model_id")
    assert list(got.reset_index().columns[: len(SPECS_COLUMNS)]) == list(SPECS_COLUMNS)
    a, c, e = got.loc["2023_a_b"], got.loc["2023_c_d"], got.loc["2022_e_f"]
    assert (a.msrp_usd, a.horsepower, a.horsepower_rpm, a.mpg_city, a.mpg_highway) == (34500, 300, 5600, 19, 26)
    assert (a.cylinders, a.displacement_l, a.drivetrain, a.fuel, a.seats) == (6, 3.5, "4WD", "Gas", 7)
    assert (a.wheel_size_in, a.length_in) == (20.0, 201.4)
    assert (c.fuel, c.drivetrain, c.horsepower, c.mpg_city, c.mpg_highway) == ("Electric", "AWD", 402, 120, 101)
    assert pd.isna(c.cylinders) and pd.isna(c.displacement_l) and pd.isna(c.horsepower_rpm)
    assert (e.fuel, e.cylinders, e.mpg_city, e.mpg_highway, e.drivetrain, e.body_style) == (
        "Flex Fuel", 4, 25, 33, "FWD", "4dr Car")
    assert pd.isna(e.horsepower) and pd.isna(e.seats)  # absent from the page: <NA>, never 0
    assert str(got["msrp_usd"].dtype) == "Int64" and str(got["length_in"].dtype) == "Float64"
