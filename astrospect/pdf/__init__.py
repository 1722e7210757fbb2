"""Redshift PDFs over fixed bins: the bins and summaries, their metrics, plots and baseline PDFs."""
