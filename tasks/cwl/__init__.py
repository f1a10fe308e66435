"""CWL: exporting packages (OGC application packages), checking and loading documents, running them with cwltool."""
