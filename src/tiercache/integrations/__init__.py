"""Where tiercache meets the engines: Delta Lake, pyarrow, DataFusion, and cache warming.

Built on the core (the chain, the tiers, the fsspec front door); the core never imports from
here.
"""
