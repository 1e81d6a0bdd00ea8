"""The adapter language's extraction forms: one small module per job, each with one narrow interface.

    fields.py     FieldRule: css / xpath / json (JMESPath) + attr, re, join: one value or a list from a page
    document.py   Document: the page (a parsel Selector), its JSON data sources, its schema.org items
    pairs.py      spec pair forms: rows, dl, table, jsonld, microdata, json -> [(key, value), ...]
    structured.py schema.org vehicles (via extruct) flattened to pairs, their identity and images
    identity.py   which model-year a page is about, from URL groups, fields, a title regex or JSON-LD
    photos.py     photo sources (elements, srcset, <picture>, background-image, JSON, JSON-LD), rewrites,
                  view hints
    actions.py    browser actions: click until gone, scroll, wait; run in Chromium by carscope/crawler/browser.py

carscope/crawler/adapter.py reads a TOML adapter into these; carscope/crawler/parse.py runs them on a page. The reference for
adapter authors is carscope/crawler/sites/README.md.
"""
