# Writes src/Vega.MLNet/Text/Resources/html5-entities.tsv from the WHATWG HTML5 named character reference
# table (Python's html.entities.html5 carries the same table). One line per name: name<TAB>hex code points.
import html.entities, os
out = os.path.join(os.path.dirname(__file__), "..", "src", "Vega.MLNet", "Text", "Resources", "html5-entities.tsv")
with open(out, "w", encoding="utf-8", newline="\n") as f:
    for name in sorted(html.entities.html5):
        f.write(name + "\t" + " ".join("%X" % ord(c) for c in html.entities.html5[name]) + "\n")
