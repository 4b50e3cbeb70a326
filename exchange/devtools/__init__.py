"""Developer tools, apart from the service: the load generator (``exchange bench``), the
seed of a coalition at scale (``exchange bench seed``) and the demo coalition
(``exchange serve --demo``)."""
