using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Vega.MLNet.Imaging;

/// <summary>One image of an <see cref="ImageSource"/>.</summary>
/// <param name="Index">Position in <see cref="ImageSource.Items"/> (0-based).</param>
/// <param name="Id">Stable identity: the path relative to the folder, the path as listed, or <c>idx:&lt;file&gt;#&lt;i&gt;</c>.</param>
/// <param name="Path">The file to decode (null for images that are not files, e.g. IDX entries).</param>
/// <param name="Label">The item's label if the source has one (CSV label column, IDX label, or sub-folder name).</param>
/// <param name="Candidates">Candidate labels for this item (CSV <c>candidates</c> column, "a|b|c"), or null.</param>
internal sealed record ImageItem(int Index, string Id, string? Path, string? Label, IReadOnlyList<string>? Candidates)
{
    /// <summary>Where the item was declared (e.g. "manifest.csv line 7"), added to its error messages.</summary>
    internal string? Origin { get; init; }

    /// <summary>Position inside an IDX file.</summary>
    internal int IdxIndex { get; init; } = -1;

    /// <summary>For an augmented view: the crop and flip to apply after decoding, and the index of the original image.</summary>
    internal (RandomResizedCrop Crop, int SourceIndex)? Augmentation { get; init; }
}

/// <summary>An item (or a listing entry) that could not be used, with the reason; runs go on without it.</summary>
/// <param name="Index">The item's <see cref="ImageItem.Index"/>, or null for an entry rejected while listing (e.g. a CSV line with an empty path).</param>
/// <param name="Id">The item's id, or where the bad entry is (e.g. "manifest.csv line 5").</param>
/// <param name="Path">The file concerned, if any.</param>
/// <param name="Reason">What is wrong (e.g. "truncated JPEG (premature end of data)").</param>
public sealed record SkippedItem(int? Index, string Id, string? Path, string Reason);

/// <summary>
/// A deterministic, ordered list of images: a folder (recursive, filtered by extension, ordinal order of the relative
/// paths), a list of paths, a CSV manifest or an IDX file (MNIST format). Items are loaded on demand, possibly from
/// several threads at once; an item that cannot be loaded is recorded in <see cref="Skipped"/> (with path and reason)
/// and never stops the run. Entries rejected while listing (e.g. a CSV line with an empty path) are in
/// <see cref="Skipped"/> from the start and are not items.
/// </summary>
internal sealed class ImageSource
{
    /// <summary>
    /// The default folder extensions (case-insensitive): .jpg, .jpeg, .png, .gif, .webp, .bmp, .tif, .tiff. Every
    /// listed file is decoded or reported with the reason it cannot be; files with other extensions are reported in
    /// <see cref="Skipped"/> too.
    /// </summary>
    public static IReadOnlyList<string> DefaultExtensions { get; } = Array.AsReadOnly([".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"]);

    /// <summary>
    /// Why <paramref name="text"/> (an id, path or label) cannot be written to line-based outputs, or null when it
    /// can: a control character (C0, DEL, C1) or a Unicode line or paragraph separator would split or shift the rows
    /// of ids.txt and CSV files, so items whose names hold one are refused (docs/reliability.md).
    /// </summary>
    internal static string? LineBreakingCharacter(string text)
    {
        foreach (char c in text)
            if (char.IsControl(c) || c is '\u2028' or '\u2029')
                return $"contains the control character U+{(int)c:X4}, which would break the one-line-per-item outputs (ids.txt, CSV); rename it";
        return null;
    }

    /// <summary>Fashion-MNIST's class names by label, for <see cref="FromIdx"/> (they are in the dataset's README only).</summary>
    public static IReadOnlyList<string> FashionMnistClassNames => IdxImages.FashionMnistClassNames;

    private readonly Func<ImageItem, DecodeOptions, RgbImage?, RgbImage> _load;
    private readonly List<SkippedItem> _listingProblems;
    private readonly ConcurrentDictionary<int, SkippedItem> _loadFailures = new();

    private ImageSource(string description, List<ImageItem> items, List<SkippedItem> listingProblems, Func<ImageItem, DecodeOptions, RgbImage?, RgbImage> load)
    {
        Description = description;
        Items = items.AsReadOnly();
        _listingProblems = listingProblems;
        _load = load;
    }

    /// <summary>What the source is, e.g. "folder /data/photos (recursive)".</summary>
    public string Description { get; }

    /// <summary>The items in their deterministic order.</summary>
    public IReadOnlyList<ImageItem> Items { get; }

    /// <summary>Number of items.</summary>
    public int Count => Items.Count;

    /// <summary>Decoding options for file items (default: EXIF orientation ignored). Set before loading.</summary>
    public DecodeOptions DecodeOptions { get; set; } = DecodeOptions.Default;

    /// <summary>Entries rejected while listing, then items that failed to load so far, in item order.</summary>
    public IReadOnlyList<SkippedItem> Skipped =>
        [.. _listingProblems, .. _loadFailures.Values.OrderBy(s => s.Index)];

    /// <summary>
    /// Loads <paramref name="item"/>; on failure records it in <see cref="Skipped"/> and returns false. Only decode and
    /// file problems are caught; a missing native library still throws. Thread-safe; pass a per-thread
    /// <paramref name="reuse"/> image to avoid allocating.
    /// </summary>
    public bool TryLoad(ImageItem item, [NotNullWhen(true)] out RgbImage? image, RgbImage? reuse = null)
    {
        try
        {
            image = Load(item, reuse);
            return true;
        }
        catch (ImageDecodeException e)
        {
            _loadFailures[item.Index] = new SkippedItem(item.Index, item.Id, item.Path, e.Reason);
            image = null;
            return false;
        }
    }

    /// <summary>Loads <paramref name="item"/> or throws <see cref="ImageDecodeException"/> (not recorded in <see cref="Skipped"/>).</summary>
    public RgbImage Load(ImageItem item, RgbImage? reuse = null)
    {
        ArgumentNullException.ThrowIfNull(item);
        if ((uint)item.Index >= (uint)Items.Count || !ReferenceEquals(Items[item.Index], item) && Items[item.Index] != item)
            throw new ArgumentException($"Item {item.Index} ('{item.Id}') does not belong to this source ({Description}).", nameof(item));
        try
        {
            return _load(item, DecodeOptions, reuse);
        }
        catch (ImageDecodeException e) when (item.Origin is not null)
        {
            throw new ImageDecodeException(e.Path, $"{e.Reason} ({item.Origin})", e);
        }
    }

    /// <summary>A readable summary of <see cref="Skipped"/>: one line per entry ("id: reason"), or "no items skipped".</summary>
    public string SkippedReport()
    {
        var skipped = Skipped;
        if (skipped.Count == 0) return "no items skipped";
        var sb = new StringBuilder();
        sb.Append(skipped.Count).Append(skipped.Count == 1 ? " entry" : " entries").Append(" skipped from ").Append(Description).Append(':');
        foreach (var s in skipped) sb.Append("\n  ").Append(s.Path ?? s.Id).Append(": ").Append(s.Reason);
        return sb.ToString();
    }

    /// <summary>
    /// The items at <paramref name="indices"/> (positions in <see cref="Items"/>, in the given order) as a new source
    /// that loads them the same way; items are renumbered 0..n−1, ids and labels are kept.
    /// </summary>
    internal ImageSource Subset(IReadOnlyList<int> indices)
    {
        var items = new List<ImageItem>(indices.Count);
        for (int i = 0; i < indices.Count; i++) items.Add(Items[indices[i]] with { Index = i });
        return new ImageSource($"{Description}, {indices.Count} selected", items, [], _load) { DecodeOptions = DecodeOptions };
    }

    /// <summary>
    /// <paramref name="views"/> augmented views of every item (random resized crop of <paramref name="minScale"/> to 100 % of
    /// the area + flip, <see cref="RandomResizedCrop"/>),
    /// item-major: item i's view v is item i·views + v, with id "&lt;id&gt;#view&lt;v&gt;" and the same label and candidates.
    /// Loading decodes the original and applies the view's crop; the embedding engine squashes the crop to the model's
    /// input size and caches each view under its own key.
    /// </summary>
    internal ImageSource AugmentedViews(int views, ulong seed, double minScale = 0.08)
    {
        if (views < 1) throw new ArgumentOutOfRangeException(nameof(views), views, "At least one view.");
        if (!(minScale > 0 && minScale <= 1)) throw new ArgumentOutOfRangeException(nameof(minScale), minScale, "The smallest crop must be a fraction of the area in (0, 1].");
        var items = new List<ImageItem>(Items.Count * views);
        foreach (var item in Items)
            for (int v = 0; v < views; v++)
                items.Add(item with { Index = items.Count, Id = $"{item.Id}#view{v}", Augmentation = (new RandomResizedCrop(seed, v, MinScale: minScale), item.Index) });
        return new ImageSource($"{Description}, {views} augmented views each", items, [], (item, options, reuse) =>
        {
            var original = _load(Items[item.Augmentation!.Value.SourceIndex], options, null);
            return item.Augmentation.Value.Crop.Apply(original, item.Augmentation.Value.SourceIndex, reuse ?? new RgbImage());
        }) { DecodeOptions = DecodeOptions };
    }

    private static RgbImage LoadFile(ImageItem item, DecodeOptions options, RgbImage? reuse) =>
        ImageDecoder.Decode(item.Path!, options, reuse);

    // ------------------------------------------------------------------ folder

    /// <summary>
    /// All files under <paramref name="folder"/> whose extension is in <paramref name="extensions"/> (default
    /// <see cref="DefaultExtensions"/>; case-insensitive), ordered by ordinal comparison of their '/'-separated
    /// relative paths, which are the ids. Symbolic links are followed, each folder once. With
    /// <paramref name="labelsFromSubfolders"/> the label is the first folder of the relative path (the "ImageFolder"
    /// layout <c>root/class/file.jpg</c>). Nothing is left out silently: hidden entries (names starting with '.'),
    /// files with other extensions, names holding a control character and unreadable sub-folders are reported in
    /// <see cref="Skipped"/> with the reason.
    /// </summary>
    public static ImageSource FromFolder(string folder, bool recursive = true, IEnumerable<string>? extensions = null, bool labelsFromSubfolders = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string root = System.IO.Path.GetFullPath(folder);
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException(File.Exists(root)
                ? $"'{folder}' is a file, not a folder of images (use ImageSource.FromPaths or FromCsv for files)."
                : $"Image folder not found: '{folder}'.");
        var exts = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var e in extensions ?? DefaultExtensions)
        {
            if (string.IsNullOrWhiteSpace(e)) throw new ArgumentException("An extension is empty.", nameof(extensions));
            exts.Add(e.StartsWith('.') ? e : "." + e);
        }

        var files = new List<string>();
        var problems = new List<SkippedItem>();
        var visited = new HashSet<string>(StringComparer.Ordinal);
        var others = new Dictionary<string, (int Count, string First, string FirstPath)>(StringComparer.Ordinal);
        Walk(root, "", recursive, exts, files, problems, visited, others);
        files.Sort(StringComparer.Ordinal);
        // Files with other extensions: one entry per extension (a folder of photos with sidecar files stays readable).
        string listed = string.Join(" ", exts.Order(StringComparer.Ordinal));
        foreach (var (ext, o) in others.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            string what = ext.Length == 0 ? "files without an extension are" : $"the extension '{ext}' is";
            problems.Add(o.Count == 1
                ? new SkippedItem(null, o.First, o.FirstPath, $"not listed: {what} not one of {listed}")
                : new SkippedItem(null, $"{o.Count} files {(ext.Length == 0 ? "without an extension" : "*" + ext)} (e.g. {o.First})", null,
                    $"not listed: {what} not one of {listed}"));
        }
        problems.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id)); // the walk's order depends on the file system
        var items = new List<ImageItem>(files.Count);
        foreach (var rel in files)
        {
            string? label = labelsFromSubfolders && rel.IndexOf('/') is > 0 and var slash ? rel[..slash] : null;
            items.Add(new ImageItem(items.Count, rel, System.IO.Path.Combine(root, rel), label, null));
        }
        return new ImageSource($"folder {root}{(recursive ? " (recursive)" : "")}", items, problems, LoadFile);
    }

    private static void Walk(string dir, string rel, bool recursive, HashSet<string> exts, List<string> files, List<SkippedItem> problems, HashSet<string> visited,
        Dictionary<string, (int Count, string First, string FirstPath)> others)
    {
        var info = new DirectoryInfo(dir);
        string canonical = info.LinkTarget is not null ? info.ResolveLinkTarget(true)?.FullName ?? dir : dir;
        if (!visited.Add(canonical.TrimEnd('/')))
        {
            if (rel.Length > 0) problems.Add(new SkippedItem(null, rel, dir, "a link to a folder already listed (listed once)"));
            return;
        }
        IEnumerable<FileSystemInfo> entries;
        try
        {
            entries = info.EnumerateFileSystemInfos("*", new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = false, RecurseSubdirectories = false }).ToList();
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            problems.Add(new SkippedItem(null, rel.Length == 0 ? "." : rel, dir, $"cannot list folder ({e.Message})"));
            return;
        }
        foreach (var entry in entries)
        {
            string childRel = rel.Length == 0 ? entry.Name : rel + "/" + entry.Name;
            bool isDir = entry is DirectoryInfo;
            if (entry.Name.StartsWith('.'))
            {
                problems.Add(new SkippedItem(null, childRel, entry.FullName, isDir ? "hidden folder (names starting with '.' are not listed)" : "hidden file (names starting with '.' are not listed)"));
                continue;
            }
            if (LineBreakingCharacter(entry.Name) is { } bad)
            {
                problems.Add(new SkippedItem(null, childRel, entry.FullName, $"the {(isDir ? "folder" : "file")} name {bad}"));
                continue;
            }
            if (isDir)
            {
                if (recursive) Walk(entry.FullName, childRel, recursive, exts, files, problems, visited, others);
                else problems.Add(new SkippedItem(null, childRel, entry.FullName, "sub-folder (the listing is not recursive)"));
            }
            else if (exts.Contains(System.IO.Path.GetExtension(entry.Name)))
                files.Add(childRel);
            else
            {
                string ext = System.IO.Path.GetExtension(entry.Name).ToLowerInvariant();
                others[ext] = !others.TryGetValue(ext, out var o) ? (1, childRel, entry.FullName)
                    : string.CompareOrdinal(childRel, o.First) < 0 ? (o.Count + 1, childRel, entry.FullName) : (o.Count + 1, o.First, o.FirstPath);
            }
        }
    }

    // ------------------------------------------------------------------ paths

    /// <summary>
    /// The given files in the given order; ids are the paths as given. Empty entries are reported in
    /// <see cref="Skipped"/>; missing or broken files when loaded.
    /// </summary>
    public static ImageSource FromPaths(IEnumerable<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var items = new List<ImageItem>();
        var problems = new List<SkippedItem>();
        int n = 0;
        foreach (var p in paths)
        {
            n++;
            if (string.IsNullOrWhiteSpace(p)) problems.Add(new SkippedItem(null, $"entry {n}", null, "empty path"));
            else if (LineBreakingCharacter(p) is { } bad) problems.Add(new SkippedItem(null, $"entry {n}", null, $"the path {bad}"));
            else items.Add(new ImageItem(items.Count, p, System.IO.Path.GetFullPath(p), null, null));
        }
        return new ImageSource($"list of {n} paths", items, problems, LoadFile);
    }

    // ------------------------------------------------------------------ CSV

    /// <summary>
    /// A CSV manifest (UTF-8, comma-separated, RFC 4180 quoting within a line) with a header row naming the columns:
    /// <c>path</c> (required), optionally <c>label</c> and <c>candidates</c> ("a|b|c"); other columns are ignored.
    /// Relative paths are resolved against the CSV's folder; the id is the path as written. A line with an empty path,
    /// broken quoting or too many fields is reported in <see cref="Skipped"/> naming the line; missing or broken files
    /// are reported when loaded, also naming the line.
    /// </summary>
    public static ImageSource FromCsv(string csvPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(csvPath);
        string full = System.IO.Path.GetFullPath(csvPath);
        if (!File.Exists(full)) throw new FileNotFoundException($"CSV manifest not found: '{csvPath}'.", csvPath);
        string dir = System.IO.Path.GetDirectoryName(full)!;
        string name = System.IO.Path.GetFileName(full);
        var items = new List<ImageItem>();
        var problems = new List<SkippedItem>();
        int lineNo = 0, pathCol = -1, labelCol = -1, candCol = -1, columns = 0;
        var fields = new List<string>();
        FileStream stream;
        try
        {
            stream = Common.SafeFile.OpenStream(full);
        }
        catch (Common.SafeFile.RefusedException e)
        {
            throw new InvalidDataException($"The CSV manifest '{csvPath}' cannot be read: {e.Reason}.", e);
        }
        using var text = new StreamReader(stream, Encoding.UTF8);
        while (text.ReadLine() is { } line)
        {
            lineNo++;
            if (line.Trim().Length == 0) continue;
            string where = $"{name} line {lineNo}";
            string? error = SplitCsvLine(line, fields);
            if (pathCol < 0)
            {
                if (error is not null) throw new InvalidDataException($"{where}: the header row is not valid CSV ({error}).");
                for (int i = 0; i < fields.Count; i++)
                {
                    switch (fields[i].Trim().ToLowerInvariant())
                    {
                        case "path" when pathCol < 0: pathCol = i; break;
                        case "label" when labelCol < 0: labelCol = i; break;
                        case "candidates" when candCol < 0: candCol = i; break;
                    }
                }
                if (pathCol < 0)
                    throw new InvalidDataException($"{where}: the header row must name a 'path' column (columns: path[,label][,candidates]), got '{line}'.");
                columns = fields.Count;
                continue;
            }
            if (error is not null) { problems.Add(new SkippedItem(null, where, null, error)); continue; }
            if (fields.Count > columns)
            {
                problems.Add(new SkippedItem(null, where, null, $"{fields.Count} fields, the header has {columns} (quote fields that contain commas)"));
                continue;
            }
            string path = pathCol < fields.Count ? fields[pathCol].Trim() : "";
            if (path.Length == 0) { problems.Add(new SkippedItem(null, where, null, "empty path")); continue; }
            string? badField = null;
            for (int i = 0; i < fields.Count && badField is null; i++)
                if ((i == pathCol || i == labelCol || i == candCol) && LineBreakingCharacter(fields[i]) is { } bad)
                    badField = $"the {(i == pathCol ? "path" : i == labelCol ? "label" : "candidates")} field {bad}";
            if (badField is not null) { problems.Add(new SkippedItem(null, where, null, badField)); continue; }
            string? label = labelCol >= 0 && labelCol < fields.Count && fields[labelCol].Trim().Length > 0 ? fields[labelCol].Trim() : null;
            IReadOnlyList<string>? candidates = null;
            if (candCol >= 0 && candCol < fields.Count)
            {
                var c = fields[candCol].Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                if (c.Length > 0) candidates = Array.AsReadOnly(c);
            }
            string resolved = System.IO.Path.GetFullPath(System.IO.Path.IsPathRooted(path) ? path : System.IO.Path.Combine(dir, path));
            items.Add(new ImageItem(items.Count, path.Replace('\\', '/'), resolved, label, candidates) { Origin = where });
        }
        if (pathCol < 0) throw new InvalidDataException($"CSV manifest '{csvPath}' is empty: it needs a header row naming a 'path' column.");
        return new ImageSource($"CSV manifest {full}", items, problems, LoadFile);
    }

    /// <summary>Splits one CSV line into <paramref name="fields"/> (RFC 4180 quoting); returns an error text or null.</summary>
    internal static string? SplitCsvLine(string line, List<string> fields)
    {
        fields.Clear();
        var sb = new StringBuilder();
        int i = 0;
        while (true)
        {
            sb.Clear();
            if (i < line.Length && line[i] == '"')
            {
                i++;
                while (true)
                {
                    if (i >= line.Length) return "unterminated quoted field (a quoted field cannot span lines)";
                    if (line[i] == '"')
                    {
                        if (i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    sb.Append(line[i++]);
                }
                while (i < line.Length && line[i] is ' ' or '\t') i++;
                if (i < line.Length && line[i] != ',') return $"unexpected character '{line[i]}' after a quoted field";
            }
            else
            {
                while (i < line.Length && line[i] != ',')
                {
                    if (line[i] == '"') return "a quote inside an unquoted field (quote the whole field and double the inner quotes)";
                    sb.Append(line[i++]);
                }
            }
            fields.Add(sb.ToString());
            if (i >= line.Length) return null;
            i++; // the comma
        }
    }

    // ------------------------------------------------------------------ IDX

    /// <summary>
    /// The images of an IDX file (MNIST format, raw or gzip; grayscale replicated to RGB) with optional labels from an
    /// IDX label file (same count). Labels are named <paramref name="classNames"/>[label] when a class list is given
    /// (a label outside it is an error), else they are the number ("0", "1", …): an IDX file does not say what its
    /// labels mean. Ids are <c>idx:&lt;file name&gt;#&lt;i&gt;</c>.
    /// </summary>
    public static ImageSource FromIdx(string imagesPath, string? labelsPath = null, IReadOnlyList<string>? classNames = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(imagesPath);
        var idx = IdxImages.Open(imagesPath);
        byte[]? labels = labelsPath is null ? null : IdxImages.ReadLabels(labelsPath);
        if (labels is not null && labels.Length != idx.Count)
            throw new InvalidDataException($"The IDX label file '{labelsPath}' has {labels.Length} labels but '{imagesPath}' has {idx.Count} images.");
        string file = System.IO.Path.GetFileName(imagesPath);
        if (LineBreakingCharacter(file) is { } badName)
            throw new ArgumentException($"The IDX file name '{file}' {badName}.", nameof(imagesPath));
        var items = new List<ImageItem>(idx.Count);
        var labelText = new string[256];
        for (int i = 0; i < idx.Count; i++)
        {
            string? label = null;
            if (labels is not null)
            {
                int l = labels[i];
                if (classNames is not null && l >= classNames.Count)
                    throw new InvalidDataException(
                        $"The IDX label file '{labelsPath}' gives image {i} the label {l}, but the class list has only {classNames.Count} classes (label k is the class on line k + 1 of the list, counting class lines only).");
                label = labelText[l] ??= classNames is not null ? classNames[l] : l.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            items.Add(new ImageItem(i, $"idx:{file}#{i}", null, label, null) { IdxIndex = i });
        }
        return new ImageSource($"IDX {System.IO.Path.GetFullPath(imagesPath)} ({idx.Count} images of {idx.Columns} × {idx.Rows})", items, [],
            (item, _, reuse) => idx.Image(item.IdxIndex, reuse));
    }
}
