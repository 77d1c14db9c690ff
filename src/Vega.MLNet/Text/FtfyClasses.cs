namespace Vega.MLNet.Text;

// Character classes of ftfy 6.3.1 (https://github.com/rspeer/python-ftfy, Apache-2.0): the characters that take part in
// UTF-8 mojibake, by role. Written as .NET character-class bodies (ranges of \uXXXX).
internal static partial class FtfyClasses
{
    public const string Common = "\\u00A0\\u00AD\\u00B4\\u00B7\\u2013-\\u2015\\u2019\\u2026";
    public const string C1 = "\\u0080-\\u009F";
    public const string Bad = "\\u00A4\\u00A6\\u00A8\\u00AA\\u00AC\\u00AF\\u00B8\\u00BA\\u0192\\u02C6\\u02C7\\u02D8\\u02DB\\u02DC\\u2020\\u2021\\u2030\\u2310\\u25CA\\uFFFD";
    public const string Law = "\\u00A7\\u00B6";
    public const string Currency = "\\u00A2\\u00A3\\u00A5\\u20A7\\u20AC";
    public const string StartPunctuation = "\\u00A1\\u00A9\\u00AB\\u00BF\\u0384\\u0385\\u2018\\u201A\\u201C\\u201E\\u2022\\u2039\\uF8FF";
    public const string EndPunctuation = "\\u00AE\\u00BB\\u02DD\\u201D\\u203A\\u2122";
    public const string Numeric = "\\u00B1-\\u00B3\\u00B5\\u00B9\\u00BC-\\u00BE\\u00D7\\u00F7\\u2044\\u2116\\u2202\\u2206\\u220F\\u2211\\u221A\\u221E\\u2229\\u222B\\u2248\\u2260\\u2261\\u2264\\u2265";
    public const string Kaomoji = "\\u00B0\\u00D2-\\u00D6\\u00D9-\\u00DC\\u00F2-\\u00F6\\u00F8-\\u00FC\\u014C\\u0150\\u016A\\u0172";
    public const string UpperAccented = "\\u00C0-\\u00D1\\u00D8\\u00DC\\u00DD\\u0100\\u0102\\u0104\\u0106\\u010C\\u010E\\u0110\\u0112\\u0116\\u0118\\u011A\\u011E\\u0122\\u012A\\u0130\\u0136\\u0139\\u013B\\u013D\\u0141\\u0143\\u0145\\u0147\\u0152\\u0158\\u015A\\u015E\\u0160\\u0162\\u0164\\u016E\\u0170\\u0178\\u0179\\u017B\\u017D\\u0490";
    public const string LowerAccented = "\\u00DF-\\u00F1\\u00FC\\u0101\\u0103\\u0105\\u0107\\u010D\\u010F\\u0111\\u0113\\u0117\\u0119\\u011B\\u011F\\u0123\\u012B\\u012F\\u0137\\u013A\\u013C\\u013E\\u0142\\u0153\\u0155\\u015B\\u015F\\u0161\\u0165\\u017A\\u017C\\u017E\\u0491\\uFB01\\uFB02";
    public const string UpperCommon = "\\u00DE\\u0386\\u0388-\\u038A\\u038C\\u038E\\u038F\\u0391-\\u03AB\\u0401-\\u042F";
    public const string LowerCommon = "\\u03AC-\\u03C9\\u0430-\\u045F";
    public const string Box = "\\u2502\\u250C\\u2510\\u2518\\u251C\\u2524\\u252C\\u253C\\u2550-\\u256C\\u2580\\u2584\\u2588\\u258C\\u2590-\\u2593";
    public const string Utf8FirstOf2 = "\\u00C2-\\u00DF\\u0100\\u0102\\u0106\\u010C\\u010E\\u0110\\u0112\\u0116\\u0118\\u011A\\u011E\\u0122\\u012A\\u0130\\u0136\\u0139\\u013B\\u0141\\u0143\\u0145\\u0147\\u014C\\u0150\\u0158\\u015A\\u015E\\u0160\\u0162\\u016A\\u016E\\u0170\\u0172\\u0179\\u017B\\u017D\\u0392-\\u03A1\\u03A3-\\u03AF\\u0412-\\u042F";
    public const string Utf8FirstOf3 = "\\u00E0-\\u00EF\\u0101\\u0103\\u0105\\u0107\\u010D\\u010F\\u0113\\u0117\\u0119\\u011B\\u0123\\u012B\\u012F\\u0137\\u013A\\u013C\\u0155\\u017A\\u03B0-\\u03BF\\u0430-\\u043F";
    public const string Utf8FirstOf4 = "\\u00F0\\u00F3\\u0111\\u011F\\u0161\\u03C0\\u03C3\\u0440\\u0443";
    public const string Utf8Continuation = "\\u0020\\u0080-\\u00BF\\u00C6\\u00D8\\u00E6\\u00F8\\u0104\\u0105\\u013D\\u013E\\u0141\\u0142\\u0152\\u0153\\u0156\\u0157\\u015A\\u015B\\u015E-\\u0161\\u0164\\u0165\\u0178-\\u017E\\u0192\\u02C6\\u02C7\\u02D8\\u02DB-\\u02DD\\u0384-\\u0386\\u0388-\\u038A\\u038C\\u038E\\u038F\\u0401-\\u040C\\u040E\\u040F\\u0451-\\u045C\\u045E\\u045F\\u0490\\u0491\\u2013-\\u2015\\u2018-\\u201A\\u201C-\\u201E\\u2020-\\u2022\\u2026\\u2030\\u2039\\u203A\\u20AC\\u2116\\u2122";
    public const string Utf8ContinuationStrict = "\\u0080-\\u00BF\\u00C6\\u00D8\\u00E6\\u00F8\\u0104\\u0105\\u013D\\u013E\\u0141\\u0142\\u0152\\u0153\\u0156\\u0157\\u015A\\u015B\\u015E-\\u0161\\u0164\\u0165\\u0178-\\u017E\\u0192\\u02C6\\u02C7\\u02D8\\u02DB-\\u02DD\\u0384-\\u0386\\u0388-\\u038A\\u038C\\u038E\\u038F\\u0401-\\u040C\\u040E\\u040F\\u0451-\\u045C\\u045E\\u045F\\u0490\\u0491\\u2020\\u2021\\u2030\\u2039\\u203A\\u20AC\\u2116\\u2122";

    /// <summary>The (first, last) code point ranges of a class body written as above.</summary>
    public static IEnumerable<(int First, int Last)> Ranges(string body)
    {
        int i = 0;
        while (i < body.Length)
        {
            int first = Convert.ToInt32(body.Substring(i + 2, 4), 16);
            i += 6;
            int last = first;
            if (i < body.Length && body[i] == '-')
            {
                last = Convert.ToInt32(body.Substring(i + 3, 4), 16);
                i += 7;
            }
            yield return (first, last);
        }
    }
}
