"""A self-contained car-catalog website with procedurally drawn photos (`carscope showroom`).

    carscope showroom --makes 6 --models-per-make 4 --years 2022-2023 --photos 24 [--layout dl|jsonld|spa]

Public entry points (import them from their modules; this package imports nothing):
  showroom.config.ShowroomConfig          what decides the site (size, seed, faults); parse_faults, parse_years
  showroom.server.create_app(config)      the aiohttp application (URL map: carscope/showroom/SITE.md)
  showroom.layouts.layout_module(name)    a markup family (classic, dl, jsonld, spa): its routes and URLs
  showroom.testing.serve_in_thread(...)   run it on 127.0.0.1:<free port> in a thread; yields the base URL
  showroom.testing.iter_photos(config)    every car photo with its label, rendered directly (no server, no crawl)
  showroom.offline.write_dataset(root)    the crawl of a showroom written straight to a dataset directory
  showroom.offline.non_car_images(...)    (subject, bytes) of the galleries' drawn non-car images (logos, maps, ...)
  showroom.catalog.build_catalog(config)  makes, models, model-years, spec strings, photos
  showroom.truth.truth(catalog)           the ground truth the site serves at /__truth.json
  showroom.render.render_dataset_photo    the exact bytes the site serves for one photo
  showroom.photo_store.PhotoStore         those bytes behind a memory LRU and a disk cache; prerender

The pictures: draw.py (shared helpers: colours, gradients, backgrounds, shapes, wheels), car.py, interior.py,
non_car.py; render.py puts a photo together and encodes it. Imports run one way: config <- catalog <- the
drawing <- render <- photo_store <- server; truth reads the catalog and the layouts.
"""
