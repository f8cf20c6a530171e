import pytest

from datagen.catalog import CatalogError, books_for_moods, read_catalog_csv

HEADER = "title,author,translator,publisher,year,language,original_language,isbn,genres,moods,description\n"


def test_problem_line_numbers_count_multiline_fields():
    data = (HEADER + 'A,B,,,2001,en,,,novel,calm,"two\nlines"\n' + "C,D,,,19xx,en,,,novel,calm,x\n").encode()
    with pytest.raises(CatalogError) as e:
        read_catalog_csv(data, "f.csv")
    assert e.value.problems == ["line 4: year: Value error, '19xx' is not a 4-digit year"]


def test_duplicates_missing_columns_and_invented_isbns_are_refused():
    dup = (HEADER + "채식주의자,한강,,,,ko,,,novel,calm,x\n채식 주의자,한강 지음,,,,ko,,,novel,calm,y\n").encode()
    with pytest.raises(CatalogError, match="duplicate of line 2"):
        read_catalog_csv(dup, "f.csv")
    with pytest.raises(CatalogError, match="missing required column"):
        read_catalog_csv(b"name,writer\nx,y\n", "f.csv")
    with pytest.raises(CatalogError, match="not an ISBN"):
        read_catalog_csv((HEADER + "A,B,,,,en,,12345,novel,calm,x\n").encode(), "f.csv")
    with pytest.raises(CatalogError, match="NUL bytes"):
        read_catalog_csv(b"PK\x03\x04\x00\x00binary", "f.xlsx")


def test_shipped_catalog_is_complete_and_well_formed():
    from datagen.catalog import MOODS, builtin_catalog_files

    rows = [r for f in builtin_catalog_files() for r in read_catalog_csv(f.read_bytes(), f.name)]
    by_lang = {lang: [r for r in rows if r.language == lang] for lang in ("ko", "en")}
    assert len(rows) >= 300 and len(by_lang["ko"]) >= 150 and len(by_lang["en"]) >= 150
    assert all(r.title and r.author and r.genres and r.moods and r.description for r in rows)
    assert all(r.isbn is None for r in rows)  # we invent no ISBNs
    for lang, lang_rows in by_lang.items():
        for mood in MOODS:
            assert sum(mood in r.moods for r in lang_rows) >= 8, (lang, mood)


def test_books_for_moods_ranks_by_overlap(catalog_db):
    books = books_for_moods(catalog_db, ["comfort", "healing"], "ko")
    assert books and all(b.language == "ko" for b in books)
    assert {"comfort", "healing"} <= set(books[0].moods)


def test_problem_lines_are_the_files_own_after_blank_lines_and_a_multiline_field():
    # line 1 header, 2-4 one record with a three-line quoted description, 5-6 blank, 7 the bad row
    data = (HEADER + 'A,B,,,2001,en,,,novel,calm,"one\ntwo\nthree"\n\n\n' + "C,D,,,19xx,en,,,novel,calm,x\n").encode()
    with pytest.raises(CatalogError) as e:
        read_catalog_csv(data, "f.csv")
    assert e.value.problems == ["line 7: year: Value error, '19xx' is not a 4-digit year"]


def test_an_unclosed_quote_is_named_with_its_line_and_imports_nothing():
    # Without strict reading, the quote on line 7 would swallow the rest of the file into one description.
    data = (HEADER + 'A,B,,,2001,en,,,novel,calm,"two\nlines"\n' + "C,D,,,2002,en,,,novel,calm,x\n\n\n"
            + 'E,F,,,2003,en,,,novel,calm,"never closed\n' + "G,H,,,2004,en,,,novel,calm,y\n").encode()
    with pytest.raises(CatalogError, match="nothing was imported") as e:
        read_catalog_csv(data, "f.csv")
    assert e.value.problems == ['line 7: a quoted field is never closed (unclosed ")']


def test_crlf_files_count_lines_the_same():
    data = (HEADER + 'A,B,,,2001,en,,,novel,calm,"two\nlines"\n' + "C,D,,,19xx,en,,,novel,calm,x\n"
            ).replace("\n", "\r\n").encode()
    with pytest.raises(CatalogError) as e:
        read_catalog_csv(data, "f.csv")
    assert e.value.problems == ["line 4: year: Value error, '19xx' is not a 4-digit year"]


@pytest.mark.parametrize("content, problems", [
    # a bad record that itself spans lines 4-5 is reported where it starts (csv's line_num says 5)
    ('instruction,input,output\nq1,"a\nb",answer one\n,"x\ny",\nq3,c,answer three\n',
     ["line 4: empty instruction and output"]),
    ('instruction,input,output\nq1,a,answer one\n\n\nq2,"unclosed,answer\nq3,c,answer three\n',
     ['line 5: a quoted field is never closed (unclosed ")']),
    ('instruction,input,output\nq1,"a\nb",answer one\nq2,b,answer two,extra\n',
     ["line 4: more fields than the header has"]),
])
def test_sample_csv_problems_name_the_files_real_lines(content, problems):
    from datagen.exchange import ExchangeError, read_rows

    with pytest.raises(ExchangeError, match="nothing was imported") as e:
        read_rows(content.encode(), "s.csv")
    assert e.value.problems == problems
