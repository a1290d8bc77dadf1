"""The one reader of customer files (core/reader.py): every rule, every field case.

The field cases (tests/field_cases/, README there) are files people really send; each test
names the file and asserts the correct outcome from that README.
"""

from __future__ import annotations

import codecs
import io
import zipfile
from pathlib import Path

import pytest

from core.error_types import ErrorType
from core.files import UnreadableFileError
from core.reader import CustomerFile, normalise_column_name, read_customer_file
from model.contract import FEATURE_NAMES, IDENTIFIER, TARGET, default_record, record_json_schema

SCHEMA = record_json_schema()
FIELD_CASES = Path(__file__).resolve().parents[1] / "field_cases"
HEADER = ",".join((IDENTIFIER, *FEATURE_NAMES))


def line(customer_id: str = "C1", delimiter: str = ",", **changes: object) -> str:
    record = default_record() | changes
    cells = ("" if record[name] is None else str(record[name]) for name in FEATURE_NAMES)
    return delimiter.join([customer_id, *cells])


def read(text: str | bytes) -> CustomerFile:
    return read_customer_file(text.encode() if isinstance(text, str) else text, SCHEMA)


def read_case(name: str) -> CustomerFile:
    return read_customer_file((FIELD_CASES / name).read_bytes(), SCHEMA)


def refusal(data: str | bytes) -> UnreadableFileError:
    with pytest.raises(UnreadableFileError) as caught:
        read(data)
    return caught.value


# --- the field cases ------------------------------------------------------------------------------

def test_ibm_export_is_read_with_its_names_and_codings_as_aliases() -> None:
    table = read_case("ibm_telco_export_sample.csv")
    assert table.shape == "the public IBM Telco churn export"
    assert table.columns == (IDENTIFIER, *FEATURE_NAMES, TARGET)
    assert table.source_columns[:3] == ("customerID", "gender", "SeniorCitizen")
    assert len(table.rows) == 200 and not any(row.problems for row in table.rows)
    first = table.rows[0]
    assert first.number == 2
    assert dict(first.cells) == {
        IDENTIFIER: "7590-VHVEG", "female": "1", "senior_citizen": "0", "partner": "1",
        "dependents": "0", "tenure": "1", "phone_service": "0", "multiple_lines": "No phone service",
        "internet_service": "DSL", "online_security": "No", "online_backup": "Yes",
        "device_protection": "No", "tech_support": "No", "streaming_tv": "No", "streaming_movies": "No",
        "contract": "Month-to-month", "paperless_billing": "1", "payment_method": "Electronic check",
        "monthly_charges": "29.85", "total_charges": "29.85", TARGET: "No",
    }
    assert table.rows[1].cells["female"] == "0"  # Male
    # the single space of a first-month customer's TotalCharges is an empty cell
    blanks = [row for row in table.rows if row.cells["total_charges"] is None]
    assert len(blanks) == 11 and {row.cells["tenure"] for row in blanks} == {"0"}
    assert blanks[0].cells[IDENTIFIER] == "4472-LVYGI"


def test_total_charges_blank_space_is_empty() -> None:
    table = read_case("total_charges_blank_space.csv")
    assert [row.cells["total_charges"] for row in table.rows] == ["29.85", "1889.5", None]
    assert table.rows[2].raw[-1] == " "


def test_na_like_customer_ids_are_kept_byte_for_byte() -> None:
    table = read_case("na_like_customer_ids.csv")
    assert table.column_values(IDENTIFIER) == ["NA", "None", "NA", "null"]
    assert table.rows[3].cells["total_charges"] == "NA"  # text, never "missing"


def test_trailing_delimiter_on_every_row_is_an_ignored_empty_field() -> None:
    table = read_case("trailing_delimiter_every_row.csv")
    assert table.columns == (IDENTIFIER, *FEATURE_NAMES)
    assert table.column_values(IDENTIFIER) == ["ZX-1001", "ZX-1002", "ZX-1003"]
    assert table.column_values("total_charges") == ["29.85", "1889.5", "108.15"]
    assert not any(row.problems for row in table.rows)
    assert any("one `,` more than the header" in note for note in table.notes)


def test_extra_fields_on_one_row_spoil_that_row_only_and_shift_nothing() -> None:
    table = read_case("extra_fields_on_first_row.csv")
    bad, *good = table.rows
    assert bad.number == 2 and bad.malformed and dict(bad.cells) == {}
    assert bad.problems == ((None, "row 2 has 21 fields, the header 20"),)
    assert bad.raw[0] == "C02412" and bad.raw[-1] == "EXTRA"
    assert [row.cells[IDENTIFIER] for row in good] == ["C05119", "C05725"]
    assert [row.cells["total_charges"] for row in good] == ["3729.75", "71.35"]
    assert not any(row.problems for row in good)


def test_header_with_trailing_space_is_normalised() -> None:
    table = read_case("header_with_trailing_space.csv")
    assert table.columns[-1] == "total_charges"
    assert table.source_columns[-1] == "total_charges"


def test_duplicate_column_is_refused_by_name() -> None:
    error = refusal((FIELD_CASES / "duplicate_column_name.csv").read_bytes())
    assert error.error_type == ErrorType.UNREADABLE_FILE
    assert error.detail == "names the column `tenure` twice, columns 6 and 21: remove or rename one"


def test_cr_only_line_endings_are_read_like_any_other() -> None:
    table = read_case("cr_only_line_endings.csv")
    assert len(table.rows) == 3
    assert table.column_values(IDENTIFIER) == ["ZX-1001", "ZX-1002", "ZX-1003"]


def test_blank_lines_before_the_header_are_skipped() -> None:
    table = read_case("blank_lines_before_header.csv")
    assert table.header_row == 3
    assert [row.number for row in table.rows] == [4, 5, 6]
    assert table.column_values(IDENTIFIER) == ["ZX-1001", "ZX-1002", "ZX-1003"]


def test_semicolon_delimiter_and_decimal_commas_are_read_and_named() -> None:
    table = read_case("semicolon_decimal_comma.csv")
    assert table.delimiter == ";" and table.encoding == "UTF-8 with BOM"
    assert table.columns[0] == IDENTIFIER  # the BOM is not part of the first name
    assert table.column_values("monthly_charges") == ["29.85", "56.95", "53.85"]
    assert table.column_values("total_charges") == ["29.85", "1889.5", "108.15"]
    assert "the file uses `;` as the delimiter" in table.notes
    assert "decimal commas were read as decimal points (6 cells)" in table.notes


def test_empty_trailing_column_is_ignored() -> None:
    table = read_case("empty_trailing_column.csv")
    assert table.columns == (IDENTIFIER, *FEATURE_NAMES)
    assert not any(row.problems for row in table.rows)
    assert "column 21 has no name and no value: ignored" in table.notes


# --- encodings ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("codec", "bom", "name"), [
    ("utf-8", b"", "UTF-8"),
    ("utf-8", codecs.BOM_UTF8, "UTF-8 with BOM"),
    ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16 with BOM"),
    ("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16 with BOM"),
])
def test_unicode_encodings(codec: str, bom: bytes, name: str) -> None:
    text = f"{HEADER}\r\n{line('Zoë-1')}\r\n"
    table = read(bom + text.encode(codec))
    assert table.encoding == name
    assert table.column_values(IDENTIFIER) == ["Zoë-1"]


def test_legacy_encoding_is_detected_and_named() -> None:
    rows = "\n".join(line(f"Müller-Lüdenscheid-Café-{i}") for i in range(30))
    table = read(f"{HEADER}\n{rows}\n".encode("cp1252"))
    assert table.encoding == "Windows-1252 (detected)"
    assert table.rows[0].cells[IDENTIFIER] == "Müller-Lüdenscheid-Café-0"
    assert "the file was read as Windows-1252 (detected) text" in table.notes


def test_a_non_latin_legacy_encoding_is_detected_too() -> None:
    names = ["Иванов Сергей", "Петрова Анна", "Смирнов Дмитрий", "Кузнецова Ольга"] * 8
    rows = "\n".join(line(f"{name} {i}") for i, name in enumerate(names))
    table = read(f"{HEADER}\n{rows}\n".encode("cp1251"))
    assert table.encoding == "cp1251 (detected)"
    assert table.rows[0].cells[IDENTIFIER] == "Иванов Сергей 0"


def test_utf16_without_bom_is_refused_with_the_reason() -> None:
    error = refusal(f"{HEADER}\n{line()}\n".encode("utf-16-le"))
    assert "UTF-16 text without a byte-order mark" in error.detail


def test_nul_far_inside_the_file_makes_it_unreadable() -> None:
    rows = "\n".join(line(f"C{i}") for i in range(1000))
    data = f"{HEADER}\n{rows}\n".encode()
    assert len(data) > 70_000
    spoiled = data[:70_000] + b"\x00" + data[70_001:]
    error = refusal(spoiled)
    assert error.error_type == ErrorType.UNREADABLE_FILE
    assert error.detail.startswith("holds a NUL byte at byte 70000")


def _zip(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "named"), [
    (_zip(["[Content_Types].xml", "xl/workbook.xml"]), "is an Excel workbook (.xlsx)"),
    (_zip(["mimetype", "content.xml"]), "is an OpenDocument spreadsheet (.ods)"),
    (_zip(["customers.csv"]), "is a zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500, "is an old-format Excel workbook (.xls)"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 40, "is gzip-compressed"),
    (b"<!DOCTYPE html><html><body><table><tr><td>1</td></tr></table></body></html>", "is an HTML page"),
    (b"  <html>\n<head><title>Export</title></head>", "is an HTML page"),
    (b'<?xml version="1.0"?>\n<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet">',
     "is an Excel XML spreadsheet"),
    (bytes(range(1, 32)) * 40, "is binary content"),
])
def test_content_that_is_not_csv_is_named(data: bytes, named: str) -> None:
    error = refusal(data)
    assert error.error_type == ErrorType.UNREADABLE_FILE
    assert error.detail.startswith(named)


@pytest.mark.parametrize(("data", "detail"), [
    (b"", "has no bytes"),
    (b"  \r\n\n", "has no bytes"),
    (b",,,\n,,,\n", "holds only blank lines"),
    (f"{HEADER}\n".encode(), "has a header but no rows"),
    (f"\n{HEADER}\n\n\n".encode(), "has a header but no rows"),
])
def test_empty_files(data: bytes, detail: str) -> None:
    error = refusal(data)
    assert (error.error_type, error.detail) == (ErrorType.EMPTY_FILE, detail)


# --- delimiters, lines, header, cells -------------------------------------------------------------

@pytest.mark.parametrize(("delimiter", "note"), [
    (",", None), (";", "the file uses `;` as the delimiter"),
    ("\t", "the file uses tab as the delimiter"), ("|", "the file uses `|` as the delimiter"),
])
def test_delimiter_detected(delimiter: str, note: str | None) -> None:
    text = HEADER.replace(",", delimiter) + "\n" + line("C1", delimiter) + "\n"
    table = read(text)
    assert table.delimiter == delimiter
    assert table.column_values(IDENTIFIER) == ["C1"]
    assert (note in table.notes) if note else not table.notes


def test_excel_sep_line_is_obeyed() -> None:
    table = read("sep=;\n" + HEADER.replace(",", ";") + "\n" + line("C1", ";") + "\n")
    assert table.delimiter == ";" and table.header_row == 2


def test_a_single_column_file_is_refused() -> None:
    error = refusal("customers\nC1\nC2\n")
    assert error.detail.startswith("has a single column")


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_any_line_ending(ending: str) -> None:
    table = read(ending.join([HEADER, line("C1"), "", line("C2")]) + ending)
    assert table.column_values(IDENTIFIER) == ["C1", "C2"]
    assert [row.number for row in table.rows] == [2, 4]  # the blank line still counts as a row


def test_header_names_are_normalised_for_spaces_and_case() -> None:
    header = HEADER.replace("monthly_charges", " Monthly  Charges ").replace("tenure", "TENURE")
    table = read(f"{header}\n{line()}\n")
    assert table.columns == (IDENTIFIER, *FEATURE_NAMES)
    assert normalise_column_name("\u00a0Total\u3000Charges ") == "total_charges"


def test_an_alias_and_its_contract_name_together_are_a_duplicate() -> None:
    error = refusal(HEADER + ",customerID\n" + line() + ",X\n")
    assert error.detail == (
        "names the column `customer_id` twice, columns 1 and 21 (as `customer_id` and "
        "`customerID`): remove or rename one"
    )


def test_every_cell_is_text_and_white_space_is_empty() -> None:
    table = read(f"{HEADER}\n{line('None', contract=' ', total_charges='  ')}\n")
    [row] = table.rows
    assert row.cells[IDENTIFIER] == "None"
    assert row.cells["contract"] is None and row.cells["total_charges"] is None
    assert row.raw[-1] == "  "


def test_rows_with_fewer_fields_are_their_own_errors() -> None:
    short = ",".join(line("C2").split(",")[:-2])
    table = read("\n".join([HEADER, line("C1"), short, line("C3"), ""]))
    assert [row.malformed for row in table.rows] == [False, True, False]
    assert table.rows[1].problems == ((None, "row 3 has 18 fields, the header 20"),)
    assert table.rows[1].raw == tuple(short.split(","))


def test_an_unclosed_quote_is_named_on_its_row() -> None:
    table = read("\n".join([HEADER, line("C1"), line('"C2'), line("C3"), ""]))
    assert table.rows[0].cells[IDENTIFIER] == "C1"
    assert table.rows[1].malformed
    assert "a quote (\") opened in this row is not closed" in table.rows[1].problems[0][1]


def test_a_named_column_is_kept_even_when_empty_and_a_nameless_one_with_values_too() -> None:
    table = read(HEADER + ",notes,\n" + line() + ",,kept\n")
    assert table.columns[-2:] == ("notes", "(unnamed column 22)")
    assert table.rows[0].cells["(unnamed column 22)"] == "kept"


def test_a_comma_inside_a_number_of_a_comma_file_is_that_cells_error() -> None:
    quoted = line(monthly_charges='"29,85"')
    table = read(f"{HEADER}\n{quoted}\n")
    [row] = table.rows
    assert row.cells["monthly_charges"] is None
    assert row.problems == (("monthly_charges", "`29,85` has a comma inside a number: write it with a "
                             "decimal point and no thousands separator"),)


def test_the_ibm_coding_is_applied_only_to_files_in_its_shape() -> None:
    # a file with the contract's own names keeps its values as written: "Yes" stays "Yes" (and
    # the validation calls it a wrong type), so an injected fault is never silently repaired
    table = read(f"{HEADER}\n{line(partner='Yes')}\n")
    assert table.shape is None and table.rows[0].cells["partner"] == "Yes"
    mixed = HEADER.replace("customer_id", "customerID")
    table = read(f"{mixed}\n{line(partner='Yes', female='1')}\n")
    assert table.shape is not None
    assert table.rows[0].cells["partner"] == "1" and table.rows[0].cells["female"] == "1"
