using System.Reflection;
using Vega.MLNet.Orleans;
using Vega.MLNet.Selection;

namespace Vega.MLNet.Tests.Orleans;

/// <summary>The selection options cross the wire whole: every property of the option records survives the round trip.</summary>
public sealed class WireOptionsTests
{
    // A value different from the default for every settable property of an options record (nested records included).
    private static object Changed(Type type, object current, int salt) => type switch
    {
        _ when type == typeof(double) => (double)current + 0.125 + salt * 1e-3,
        _ when type == typeof(int) => (int)current + 3 + salt,
        _ when type == typeof(int?) => (int?)current is int v ? v + 5 + salt : 7 + salt,
        _ when type == typeof(bool) => !(bool)current,
        _ when type.IsEnum => Enum.GetValues(type).Cast<object>().First(v => !v.Equals(current)),
        _ when type == typeof(VegaOptions) || type == typeof(BootstrapOptions) => AllChanged(current, salt + 10),
        _ => throw new InvalidOperationException($"The wire test does not know how to change a {type.Name}; extend it and WireSelectionOptions."),
    };

    private static object AllChanged(object options, int salt)
    {
        var copy = options.GetType().GetMethod("<Clone>$")!.Invoke(options, null)!;
        int i = 0;
        foreach (var p in options.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
            p.SetValue(copy, Changed(p.PropertyType, p.GetValue(options)!, salt + i++));
        return copy;
    }

    [Fact]
    public void EveryOptionSurvivesTheWire()
    {
        var original = new SelectionOptions();
        var changed = (SelectionOptions)AllChanged(original, 0);
        // Every property really changed (so the comparison below would see a dropped one).
        foreach (var p in typeof(SelectionOptions).GetProperties().Where(p => p.CanWrite))
            Assert.NotEqual(p.GetValue(original), p.GetValue(changed));
        Assert.Equal(changed, WireSelectionOptions.From(changed).ToOptions());
        Assert.Equal(original, WireSelectionOptions.From(original).ToOptions());
        Assert.Equal(VegaOptions.Paper, WireSelectionOptions.From(new SelectionOptions { Vega = VegaOptions.Paper }).ToOptions().Vega);
    }
}
